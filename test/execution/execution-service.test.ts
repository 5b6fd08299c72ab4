// Execution and Operations services over real gRPC, with a fake Executor so the
// test decides when each action finishes.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { decodeStatusDetails, unpackDetail } from '../../engine/grpc/status';
import { REQUEST_METADATA_HEADER } from '../../engine/grpc/services';
import { encode, reapi, rpc, type longrunning } from '../../engine/proto';
import { grpcError, Status } from '../helpers/clients';
import { toWireDigest } from '../helpers/blobs';
import { FakeExecutor } from './fake-executor';
import { executeRequest, metadataOf, responseOf, stageName, startExecutionServer, uploadAction, type ExecutionServer } from './harness';

let server: ExecutionServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(opts: Partial<Parameters<typeof startExecutionServer>[0]> = {}) {
  const executor = new FakeExecutor();
  server = await startExecutionServer({ executor, ...opts });
  return { executor, s: server, c: server.clients };
}

/** Opens an Execute stream and collects what it sends. */
function openExecute(s: ExecutionServer, req: reapi.ExecuteRequest.$Properties, metadata?: grpc.Metadata) {
  const call = s.clients.execution.execute.open(req, metadata);
  const ops: longrunning.Operation[] = [];
  let onData: (() => void) | undefined;
  call.on('data', (op: longrunning.Operation) => {
    ops.push(op);
    onData?.();
  });
  const ended = new Promise<longrunning.Operation[]>((resolve, reject) => {
    call.on('error', reject);
    call.on('end', () => resolve(ops));
  });
  ended.catch(() => {});
  /** Resolves once `n` messages have arrived. */
  const received = (n: number) =>
    new Promise<longrunning.Operation[]>((resolve) => {
      const check = () => ops.length >= n && resolve(ops);
      onData = check;
      check();
    });
  return { call, ops, ended, received };
}

describe('Execute', () => {
  it('with a hold on stage updates, an action done within it answers with its result alone', async () => {
    // A long hold, so a slow machine cannot let the updates out before the action is done.
    const { executor, c } = await start({ stageUpdateHoldMs: 5_000 });
    executor.autoFinishExitCode = 0;
    const digest = await uploadAction(c, { argv: ['/bin/true'] });
    const started = performance.now();
    const ops = await c.execution.execute.collect(executeRequest(digest));
    expect(ops.map(stageName)).toEqual(['COMPLETED']);
    expect(ops[0].done).toBe(true);
    expect(responseOf(ops[0]).result?.exitCode).toBe(0);
    expect(performance.now() - started).toBeLessThan(5_000); // the final answer is never held
  });

  it('with a hold on stage updates, a longer action hears only the latest stage once the hold is over', async () => {
    const { executor, s, c } = await start({ stageUpdateHoldMs: 300 });
    const digest = await uploadAction(c, { argv: ['/bin/true'] });
    const opened = performance.now();
    const exec = openExecute(s, executeRequest(digest));
    const [run] = await executor.started(1);
    const [first] = await exec.received(1);
    expect(performance.now() - opened).toBeGreaterThanOrEqual(250);
    // QUEUED was replaced by EXECUTING while held; the live log streams come with it.
    expect(stageName(first)).toBe('EXECUTING');
    expect(metadataOf(first).stdoutStreamName).toBe(`logs/${run.action.id}/stdout`);
    run.finish({ exitCode: 0 });
    const ops = await exec.ended;
    expect(ops.map(stageName)).toEqual(['EXECUTING', 'COMPLETED']);
    expect(new Set(ops.map((o) => o.name)).size).toBe(1);
  });

  it('streams QUEUED → EXECUTING → COMPLETED with metadata, then ends the stream', async () => {
    const { executor, s, c } = await start();
    const digest = await uploadAction(c, { argv: ['/bin/true'] });
    const md = new grpc.Metadata();
    md.set(REQUEST_METADATA_HEADER, encode(reapi.RequestMetadata, reapi.RequestMetadata.create({ actionMnemonic: 'Genrule', targetId: '//x:y' })));
    const exec = openExecute(s, executeRequest(digest), md);
    const [run] = await executor.started(1);
    await exec.received(2);
    run.finish({ exitCode: 0 });
    const ops = await exec.ended;

    expect(ops.map(stageName)).toEqual(['QUEUED', 'EXECUTING', 'COMPLETED']);
    expect(ops.map((o) => o.done)).toEqual([false, false, true]);
    expect(new Set(ops.map((o) => o.name)).size).toBe(1);
    expect(ops[0].name).toMatch(/^operations\/[0-9a-f-]{36}$/);
    for (const op of ops) {
      expect(metadataOf(op).actionDigest?.hash).toBe(digest.hash);
      expect(metadataOf(op).digestFunction).toBe(reapi.DigestFunction.Value.SHA256);
    }
    expect(metadataOf(ops[1]).stdoutStreamName).toBe(`logs/${run.action.id}/stdout`);
    const response = responseOf(ops[2]);
    expect(response.status?.code ?? 0).toBe(Status.OK);
    expect(response.cachedResult).toBe(false);
    expect(response.result?.executionMetadata?.queuedTimestamp).toBeTruthy();
    expect(ops[2].error).toBeFalsy();
    expect(s.events.find((e) => e.type === 'action.queued')).toMatchObject({ mnemonic: 'Genrule', target: '//x:y' });
    // Written to the action cache: the result is now served by GetActionResult.
    await expect(c.actionCache.get({ actionDigest: toWireDigest(digest) })).resolves.toBeTruthy();
  });

  it('answers a cache hit with one done operation marked cachedResult, without running', async () => {
    const { executor, s, c } = await start();
    executor.autoFinishExitCode = 0;
    const digest = await uploadAction(c, { argv: ['/bin/true'] });
    await c.execution.execute.collect(executeRequest(digest));
    const ops = await c.execution.execute.collect(executeRequest(digest));
    expect(ops).toHaveLength(1);
    expect(ops[0].done).toBe(true);
    expect(responseOf(ops[0]).cachedResult).toBe(true);
    expect(executor.runs).toHaveLength(1);
    expect(s.events.filter((e) => e.type === 'cache.lookup').map((e) => (e as { hit: boolean }).hit)).toEqual([false, true]);
    // The operation it handed out can be looked up like any other.
    await expect(c.operations.get({ name: ops[0].name })).resolves.toMatchObject({ done: true });
  });

  it('runs again when skip_cache_lookup is set', async () => {
    const { executor, c } = await start();
    executor.autoFinishExitCode = 0;
    const digest = await uploadAction(c, { argv: ['/bin/true'] });
    await c.execution.execute.collect(executeRequest(digest));
    const ops = await c.execution.execute.collect(executeRequest(digest, { skipCacheLookup: true }));
    expect(responseOf(ops.at(-1)!).cachedResult).toBe(false);
    expect(executor.runs).toHaveLength(2);
  });

  it('does not cache a non-zero exit', async () => {
    const { executor, c } = await start();
    executor.autoFinishExitCode = 2;
    const digest = await uploadAction(c, { argv: ['/bin/false'] });
    const ops = await c.execution.execute.collect(executeRequest(digest));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code ?? 0).toBe(Status.OK);
    expect(response.result?.exitCode).toBe(2);
    expect((await grpcError(c.actionCache.get({ actionDigest: toWireDigest(digest) }))).code).toBe(Status.NOT_FOUND);
  });

  it('inlines small stdout/stderr for the caller that asked, and only for that caller', async () => {
    const { executor, s, c } = await start();
    const { digestOf } = await import('../../engine/digest');
    const out = Buffer.from('hello\n');
    const d = await digestOf(out);
    await s.store.writeAll(d, out);
    const digest = await uploadAction(c, { argv: ['/bin/echo', 'hello'] });
    const asking = openExecute(s, executeRequest(digest, { inlineStdout: true }));
    const plain = openExecute(s, executeRequest(digest));
    const [run] = await executor.started(1);
    await asking.received(1);
    await plain.received(1);
    run.finish({ result: reapi.ActionResult.create({ exitCode: 0, stdoutDigest: { hash: d.hash, sizeBytes: d.size } }) });
    const inlined = responseOf((await asking.ended).at(-1)!).result!;
    expect(Buffer.from(inlined.stdoutRaw).toString()).toBe('hello\n');
    expect(inlined.stderrRaw).toHaveLength(0);
    expect(responseOf((await plain.ended).at(-1)!).result!.stdoutRaw).toHaveLength(0);
    expect(executor.runs).toHaveLength(1);
  });

  it('runs two identical concurrent requests once and answers both', async () => {
    const { executor, s, c } = await start();
    const digest = await uploadAction(c, { argv: ['/bin/true'] });
    const a = openExecute(s, executeRequest(digest));
    await executor.started(1);
    const b = openExecute(s, executeRequest(digest, { skipCacheLookup: true }));
    await b.received(1);
    executor.runs[0].finish({ exitCode: 0 });
    const [oa, ob] = await Promise.all([a.ended, b.ended]);
    expect(executor.runs).toHaveLength(1);
    expect(responseOf(oa.at(-1)!).result?.exitCode).toBe(0);
    expect(responseOf(ob.at(-1)!).result?.exitCode).toBe(0);
    expect(oa[0].name).not.toBe(ob[0].name);
  });

  it('answers RESOURCE_EXHAUSTED when the queue is full', async () => {
    const { executor, s, c } = await start({ queueSize: 1 });
    const d1 = await uploadAction(c, { argv: ['/bin/true'], salt: '1' });
    const d2 = await uploadAction(c, { argv: ['/bin/true'], salt: '2' });
    const d3 = await uploadAction(c, { argv: ['/bin/true'], salt: '3' });
    openExecute(s, executeRequest(d1));
    await executor.started(1);
    await openExecute(s, executeRequest(d2)).received(1);
    const err = await grpcError(c.execution.execute.collect(executeRequest(d3)));
    expect(err.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/1 actions are waiting for 1 worker slot/);
  });

  it('cancels queued and running operations through CancelOperation', async () => {
    const { executor, s, c } = await start();
    const d1 = await uploadAction(c, { argv: ['/bin/true'], salt: '1' });
    const d2 = await uploadAction(c, { argv: ['/bin/true'], salt: '2' });
    const running = openExecute(s, executeRequest(d1));
    const [run] = await executor.started(1);
    const queued = openExecute(s, executeRequest(d2));
    const [q] = await queued.received(1);
    await c.operations.cancel({ name: q.name });
    const qOps = await queued.ended;
    expect(responseOf(qOps.at(-1)!).status?.code).toBe(Status.CANCELLED);

    const [r] = await running.received(1);
    await c.operations.cancel({ name: r.name });
    const rOps = await running.ended;
    expect(run.signal.aborted).toBe(true);
    expect(qOps.at(-1)!.done && rOps.at(-1)!.done).toBe(true);
    expect(responseOf(rOps.at(-1)!).status?.code).toBe(Status.CANCELLED);
    expect(executor.runs).toHaveLength(1);
    expect((await grpcError(c.operations.cancel({ name: 'operations/nope' }))).code).toBe(Status.NOT_FOUND);
  });

  it('keeps running when the caller disconnects, and WaitExecution re-attaches to the result', async () => {
    const { executor, s, c } = await start();
    const digest = await uploadAction(c, { argv: ['/bin/true'] });
    const exec = openExecute(s, executeRequest(digest));
    const [first] = await exec.received(1);
    const [run] = await executor.started(1);
    exec.call.cancel();
    await expect(exec.ended).rejects.toMatchObject({ code: Status.CANCELLED });
    expect(run.signal.aborted).toBe(false);

    const wait = c.execution.waitExecution.open({ name: first.name });
    const got: longrunning.Operation[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      wait.on('data', (op: longrunning.Operation) => {
        got.push(op);
        if (got.length === 1) run.finish({ exitCode: 0 });
      });
      wait.on('error', reject);
      wait.on('end', resolve);
    });
    await ended;
    expect(got.map(stageName)).toEqual(['EXECUTING', 'COMPLETED']);
    expect(responseOf(got[1]).result?.exitCode).toBe(0);
  });

  it('answers NOT_FOUND for unknown operations and for finished ones past retention', async () => {
    const clock = new ManualClock();
    const { executor, c } = await start({ clock, operationRetentionMs: 60_000 });
    executor.autoFinishExitCode = 0;
    const unknown = await grpcError(c.execution.waitExecution.collect({ name: 'operations/does-not-exist' }));
    expect(unknown.code).toBe(Status.NOT_FOUND);
    expect(unknown.details).toMatch(/unknown or expired; call Execute again/);

    const digest = await uploadAction(c, { argv: ['/bin/true'] });
    const ops = await c.execution.execute.collect(executeRequest(digest));
    const name = ops[0].name;
    expect((await c.execution.waitExecution.collect({ name })).at(-1)!.done).toBe(true);
    clock.advance(61_000);
    expect((await grpcError(c.execution.waitExecution.collect({ name }))).code).toBe(Status.NOT_FOUND);
    expect((await grpcError(c.operations.get({ name }))).code).toBe(Status.NOT_FOUND);
  });

  it('answers UNAVAILABLE while execution is off, and the cache keeps serving', async () => {
    const { executor, s, c } = await start();
    executor.autoFinishExitCode = 0;
    const cached = await uploadAction(c, { argv: ['/bin/true'], salt: 'cached' });
    await c.execution.execute.collect(executeRequest(cached));
    s.scheduler.setEnabled(false);
    const fresh = await uploadAction(c, { argv: ['/bin/true'], salt: 'fresh' });
    const err = await grpcError(c.execution.execute.collect(executeRequest(fresh)));
    expect(err.code).toBe(Status.UNAVAILABLE);
    expect(err.details).toMatch(/execution is paused.*POST \/api\/execution/);
    await expect(c.actionCache.get({ actionDigest: toWireDigest(cached) })).resolves.toBeTruthy();
  });

  it('refuses bad requests before queuing them, with precise statuses', async () => {
    const { c } = await start({ maxActionTimeoutMs: 10_000 });
    const bad = await grpcError(c.execution.execute.collect({ actionDigest: { hash: 'xyz', sizeBytes: 3 } }));
    expect(bad.code).toBe(Status.INVALID_ARGUMENT);

    const absent = { hash: 'a'.repeat(64), sizeBytes: 10 };
    const missing = await grpcError(c.execution.execute.collect({ actionDigest: absent }));
    expect(missing.code).toBe(Status.FAILED_PRECONDITION);
    const pf = unpackDetail(rpc.PreconditionFailure, decodeStatusDetails(missing.metadata));
    expect(pf?.violations.map((v) => [v.type, v.subject])).toEqual([['MISSING', `blobs/${absent.hash}/10`]]);

    const long = await uploadAction(c, { argv: ['/bin/true'], timeoutMs: 20_000 });
    const tooLong = await grpcError(c.execution.execute.collect(executeRequest(long)));
    expect(tooLong.code).toBe(Status.INVALID_ARGUMENT);
    expect(tooLong.details).toMatch(/exceeds this Kiln's maximum of 10 s/);

    const escaping = await uploadAction(c, { argv: ['/bin/true'], outputPaths: ['../etc/passwd'] });
    expect((await grpcError(c.execution.execute.collect(executeRequest(escaping)))).code).toBe(Status.INVALID_ARGUMENT);
  });
});

describe('Operations', () => {
  it('lists operations newest first in pages', async () => {
    const { executor, c } = await start();
    executor.autoFinishExitCode = 0;
    const names: string[] = [];
    for (let i = 0; i < 5; i++) {
      const digest = await uploadAction(c, { argv: ['/bin/true'], salt: String(i) });
      names.push((await c.execution.execute.collect(executeRequest(digest)))[0].name);
    }
    const seen: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const res = await c.operations.list({ name: 'operations', pageSize: 2, pageToken });
      expect(res.operations.length).toBeLessThanOrEqual(2);
      seen.push(...res.operations.map((o) => o.name));
      pageToken = res.nextPageToken;
      pages++;
    } while (pageToken);
    expect(pages).toBe(3);
    expect(seen).toEqual([...names].reverse());
    expect((await grpcError(c.operations.list({ pageToken: 'garbage' }))).code).toBe(Status.INVALID_ARGUMENT);
  });

  it('deletes an operation: a running one is cancelled and forgotten', async () => {
    const { executor, s, c } = await start();
    const digest = await uploadAction(c, { argv: ['/bin/true'] });
    const exec = openExecute(s, executeRequest(digest));
    const [op] = await exec.received(1);
    const [run] = await executor.started(1);
    const del = (req: longrunning.DeleteOperationRequest.$Properties) =>
      new Promise((resolve, reject) =>
        (c.raw.Operations as unknown as Record<string, Function>).deleteOperation(req, (e: unknown, v: unknown) => (e ? reject(e) : resolve(v))),
      );
    await del({ name: op.name });
    expect(run.signal.aborted).toBe(true);
    expect(responseOf((await exec.ended).at(-1)!).status?.code).toBe(Status.CANCELLED);
    expect((await grpcError(c.operations.get({ name: op.name }))).code).toBe(Status.NOT_FOUND);
    expect(((await grpcError(del({ name: op.name }))) as grpc.ServiceError).code).toBe(Status.NOT_FOUND);
  });
});
