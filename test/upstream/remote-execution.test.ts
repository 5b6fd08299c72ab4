// A Kiln with --upstream pointing at a second, in-process Kiln (itself a REAPI
// server): actions forwarded there come back with their outputs in the local
// CAS, placement picks local or upstream, and an upstream that is gone never
// fails an action this machine can run.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { toBlobDigest, DIGEST_FUNCTIONS } from '../../engine/digest';
import { blobResourceName } from '../../engine/reapi/resource-names';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { FakeExecutor } from '../execution/fake-executor';
import { executeRequest, responseOf, uploadAction } from '../execution/harness';

const running: TestEngine[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

async function upstreamKiln(): Promise<TestEngine> {
  const e = await startTestEngine();
  running.push(e);
  return e;
}

async function kilnWithUpstream(upstream: TestEngine, placement: string, local = new FakeExecutor(), concurrency = 2) {
  const e = await startTestEngine({
    config: { upstream: `grpc://127.0.0.1:${upstream.engine.grpcPort}`, placement: placement as never, concurrency },
    executor: local,
  });
  running.push(e);
  return { kiln: e, local };
}

const idOf = (name: string) => name.replace(/^operations\//, '');

describe('remote execution on an upstream REAPI server', () => {
  it('runs the action upstream and brings its outputs and stdout into the local CAS', async () => {
    const upstream = await upstreamKiln();
    const { kiln, local } = await kilnWithUpstream(upstream, 'upstream');
    const digest = await uploadAction(kiln.clients, {
      argv: ['/bin/sh', '-c', 'tr a-z A-Z < in.txt > out.txt; echo ran-upstream'],
      inputs: { 'in.txt': 'hello upstream' },
      outputPaths: ['out.txt'],
    });

    const ops = await kiln.clients.execution.execute.collect(executeRequest(digest));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code ?? 0).toBe(0);
    expect(response.result?.exitCode).toBe(0);
    expect(local.runs).toHaveLength(0);

    // The output is served by this Kiln's own CAS (the upstream never saw this client).
    const out = toBlobDigest(response.result!.outputFiles[0]!.digest, DIGEST_FUNCTIONS.sha256);
    expect((await kiln.engine.store.readAll(out)).toString()).toBe('HELLO UPSTREAM');
    const { data } = await kiln.clients.byteStream.read({ resourceName: blobResourceName('', out) });
    expect(data.toString()).toBe('HELLO UPSTREAM');
    const stdout = toBlobDigest(response.result!.stdoutDigest, DIGEST_FUNCTIONS.sha256);
    expect((await kiln.engine.store.readAll(stdout)).toString()).toBe('ran-upstream\n');

    // It really ran upstream, and this Kiln's history says so.
    expect(upstream.engine.history.list({}).items.some((a) => a.outcome === 'success')).toBe(true);
    expect(kiln.engine.history.get(idOf(ops.at(-1)!.name))?.ranOn).toBe('upstream');

    // The result is in the local action cache: a second Execute is a cache hit, nothing runs again.
    const again = responseOf((await kiln.clients.execution.execute.collect(executeRequest(digest))).at(-1)!);
    expect(again.cachedResult).toBe(true);
  });

  it('local-first runs here while a slot is free and overflows to the upstream when slots are full', async () => {
    const upstream = await upstreamKiln();
    const { kiln, local } = await kilnWithUpstream(upstream, 'local-first', new FakeExecutor(), 1);
    const first = await uploadAction(kiln.clients, { argv: ['/bin/true'], salt: 'first' });
    const second = await uploadAction(kiln.clients, { argv: ['/bin/sh', '-c', 'echo overflow'], salt: 'second' });

    const firstOps = kiln.clients.execution.execute.collect(executeRequest(first));
    const [held] = await local.started(1);
    const secondOps = await kiln.clients.execution.execute.collect(executeRequest(second));
    const response = responseOf(secondOps.at(-1)!);
    expect(response.result?.exitCode).toBe(0);
    expect(kiln.engine.history.get(idOf(secondOps.at(-1)!.name))?.ranOn).toBe('upstream');
    expect(local.runs).toHaveLength(1);

    held!.finish({ exitCode: 0 });
    const firstDone = (await firstOps).at(-1)!;
    expect(kiln.engine.history.get(idOf(firstDone.name))?.ranOn).toBe('local');
  });

  it('local-first sends actions upstream while execution here is switched off', async () => {
    const upstream = await upstreamKiln();
    const { kiln, local } = await kilnWithUpstream(upstream, 'local-first');
    kiln.engine.setExecutionEnabled(false);
    // Bazel still sees execution offered: the upstream takes the work.
    expect((await kiln.clients.capabilities.get()).executionCapabilities?.execEnabled).toBe(true);
    const digest = await uploadAction(kiln.clients, { argv: ['/bin/sh', '-c', 'echo off-here'] });
    const ops = await kiln.clients.execution.execute.collect(executeRequest(digest));
    expect(responseOf(ops.at(-1)!).result?.exitCode).toBe(0);
    expect(local.runs).toHaveLength(0);
    expect(kiln.engine.history.get(idOf(ops.at(-1)!.name))?.ranOn).toBe('upstream');
  });

  it('runs locally when the upstream is unreachable, and says so in /api/status', async () => {
    const upstream = await upstreamKiln();
    const local = new FakeExecutor();
    local.autoFinishExitCode = 0;
    const { kiln } = await kilnWithUpstream(upstream, 'upstream', local);
    await upstream.stop();

    const digest = await uploadAction(kiln.clients, { argv: ['/bin/true'] });
    const ops = await kiln.clients.execution.execute.collect(executeRequest(digest));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code ?? 0).toBe(0);
    expect(response.result?.exitCode).toBe(0);
    expect(local.runs).toHaveLength(1);
    expect(kiln.engine.history.get(idOf(ops.at(-1)!.name))?.ranOn).toBe('local');

    const status = kiln.engine.upstreamStatus();
    expect(status?.reachable).toBe(false);
    expect(status?.problem).toBeTruthy();
    const res = await fetch(`${kiln.engine.httpUrl}api/status`, { headers: { authorization: `Bearer ${kiln.engine.httpToken}` } });
    const body = (await res.json()) as { upstream?: { reachable?: boolean; url: string } };
    expect(body.upstream?.reachable).toBe(false);
    expect(body.upstream?.url).toBe(`grpc://127.0.0.1:${upstream.engine.grpcPort}`);
  });

  it('an upstream stopped mid-action: the action runs here instead and the build goes on', async () => {
    const upstream = await upstreamKiln();
    const local = new FakeExecutor();
    local.autoFinishExitCode = 0;
    const { kiln } = await kilnWithUpstream(upstream, 'upstream', local);
    const digest = await uploadAction(kiln.clients, { argv: ['/bin/sleep', '30'] });
    const result = kiln.clients.execution.execute.collect(executeRequest(digest));
    await vi.waitFor(() => expect(upstream.engine.history.list({}).items.some((a) => a.state === 'running')).toBe(true), { timeout: 20_000 });

    await upstream.stop();
    const ops = await result;
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code ?? 0, response.status?.message ?? '').toBe(0);
    expect(response.result?.exitCode).toBe(0);
    expect(local.runs).toHaveLength(1);
    expect(kiln.engine.history.get(idOf(ops.at(-1)!.name))?.ranOn).toBe('local');
  });

  it('cancelling here cancels the run on the upstream', async () => {
    const upstream = await upstreamKiln();
    const { kiln } = await kilnWithUpstream(upstream, 'upstream');
    const digest = await uploadAction(kiln.clients, { argv: ['/bin/sleep', '60'] });
    const call = kiln.clients.execution.execute.open(executeRequest(digest));
    const name = await new Promise<string>((resolve) => call.once('data', (op: { name: string }) => resolve(op.name)));
    call.on('error', () => {});
    await vi.waitFor(() => expect(upstream.engine.history.list({}).items.some((a) => a.state === 'running')).toBe(true), { timeout: 20_000 });

    await kiln.clients.operations.cancel({ name });
    await vi.waitFor(() => expect(upstream.engine.history.list({}).items[0]?.outcome).toBe('cancelled'), { timeout: 20_000 });
    call.cancel();
  });

  it('reports the upstream exit code and does not cache a failed run', async () => {
    const upstream = await upstreamKiln();
    const { kiln } = await kilnWithUpstream(upstream, 'upstream');
    const digest = await uploadAction(kiln.clients, { argv: ['/bin/sh', '-c', 'echo nope >&2; exit 3'] });
    const response = responseOf((await kiln.clients.execution.execute.collect(executeRequest(digest))).at(-1)!);
    expect(response.result?.exitCode).toBe(3);
    const stderr = toBlobDigest(response.result!.stderrDigest, DIGEST_FUNCTIONS.sha256);
    expect((await kiln.engine.store.readAll(stderr)).toString()).toBe('nope\n');
    expect(await kiln.engine.actionCache.get('', digest)).toBeUndefined();
  });
});
