// Invocations end to end through a real Engine: RequestMetadata on gRPC calls
// groups actions by Bazel invocation, action-cache hits (Execute's and
// GetActionResult's) are cached actions of their invocation, the HTTP API lists
// them, and all of it is still there after a restart on the same data folder.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type KilnConfig } from '../../engine/config';
import { Engine } from '../../engine/engine';
import { REQUEST_METADATA_HEADER } from '../../engine/grpc/services';
import { reapi } from '../../engine/proto';
import type { ActionPage, InvocationPage, InvocationSummary, MetricsSnapshot } from '../../engine/common/api-types';
import { connectClients, grpc, toWireDigest, type KilnClients } from '../helpers';
import { FakeExecutor } from '../execution/fake-executor';
import { executeRequest, uploadAction } from '../execution/harness';

function meta(invocation: string, over: Partial<reapi.RequestMetadata.$Properties> = {}): grpc.Metadata {
  const m = new grpc.Metadata();
  const bytes = reapi.RequestMetadata.encode(
    reapi.RequestMetadata.create({
      toolDetails: { toolName: 'bazel', toolVersion: '4.2.3' },
      toolInvocationId: invocation,
      correlatedInvocationsId: 'ci-job-7',
      ...over,
    }),
  ).finish();
  m.set(REQUEST_METADATA_HEADER, Buffer.from(bytes));
  return m;
}

let dataDir: string;
let engine: Engine | undefined;
let clients: KilnClients | undefined;

async function start(): Promise<{ engine: Engine; clients: KilnClients }> {
  const executor = new FakeExecutor();
  executor.autoFinishExitCode = 0;
  const config: KilnConfig = { ...defaultConfig(), host: '127.0.0.1', port: 0, httpPort: 0, dataDir, cacheSizeBytes: 1024 ** 3, concurrency: 2 };
  engine = await Engine.start({ config, executor });
  clients = connectClients(`127.0.0.1:${engine.grpcPort}`);
  return { engine, clients };
}

async function stop(): Promise<void> {
  clients?.close();
  await engine?.stop({ drainMs: 1_000 });
  engine = undefined;
  clients = undefined;
}

async function api<T>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(new URL(path, engine!.httpUrl), init);
  return { status: res.status, body: (await res.json()) as T };
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'kiln-invocations-'));
});

afterAll(async () => {
  await stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('invocations', () => {
  it('groups actions by invocation, counts cache hits as cached actions, and keeps it all across a restart', async () => {
    const { engine: e, clients: c } = await start();
    const digest = await uploadAction(c, { argv: ['/bin/echo', 'hi'] });
    const build = meta('inv-A', { actionMnemonic: 'Genrule', targetId: '//pkg:hello', configurationId: 'k8-fastbuild' });
    // A: the action runs.
    await c.execution.execute.collect(executeRequest(digest), build);
    // B: Execute finds it in the action cache, and so does a plain GetActionResult.
    await c.execution.execute.collect(executeRequest(digest), meta('inv-B', { actionMnemonic: 'Genrule', targetId: '//pkg:hello' }));
    await c.actionCache.get({ actionDigest: toWireDigest(digest) }, meta('inv-B', { actionMnemonic: 'Genrule', targetId: '//pkg:other' }));
    // C: only asked the CAS something.
    await c.cas.findMissing({ blobDigests: [toWireDigest(digest)] }, meta('inv-C'));

    const list = await api<InvocationPage>('/api/invocations');
    expect(list.status).toBe(200);
    expect(list.body.items.map((i) => i.id)).toEqual(['inv-C', 'inv-B', 'inv-A']);
    expect(list.body.total).toBe(3);
    const a = (await api<InvocationSummary>('/api/invocations/inv-A')).body;
    expect(a).toMatchObject({
      toolName: 'bazel',
      toolVersion: '4.2.3',
      correlatedId: 'ci-job-7',
      actions: { executed: 1, cached: 0, failed: 0, queued: 0, running: 0 },
      targets: ['//pkg:hello'],
      targetCount: 1,
      mnemonics: { Genrule: 1 },
    });
    expect(a.calls).toBeGreaterThanOrEqual(1);
    const b = (await api<InvocationSummary>('/api/invocations/inv-B')).body;
    expect(b.actions).toMatchObject({ executed: 0, cached: 2 });
    expect(b.targets).toEqual(['//pkg:hello', '//pkg:other']);
    expect((await api<InvocationSummary>('/api/invocations/inv-C')).body.actions).toMatchObject({ executed: 0, cached: 0 });

    const ofA = (await api<ActionPage>('/api/invocations/inv-A/actions')).body;
    expect(ofA.total).toBe(1);
    expect(ofA.items[0]).toMatchObject({ invocationId: 'inv-A', outcome: 'success', configurationId: 'k8-fastbuild', mnemonic: 'Genrule' });
    // Cache hits are actions too: filterable and counted.
    const cached = (await api<ActionPage>('/api/actions?outcome=cached')).body;
    expect(cached.total).toBe(2);
    expect(cached.items.every((i) => i.cached && i.invocationId === 'inv-B')).toBe(true);
    expect((await api<MetricsSnapshot>('/api/metrics')).body.actions.byOutcome.cached).toBe(2);

    // Unknown ids, bad cursors and writes are answered, not crashed on.
    expect((await api('/api/invocations/nope')).status).toBe(404);
    expect((await api('/api/invocations/nope/actions')).status).toBe(404);
    expect((await api('/api/invocations?cursor=x')).status).toBe(400);
    const post = { method: 'POST', headers: { authorization: `Bearer ${e.httpToken}` } };
    expect((await api('/api/invocations', post)).status).toBe(405);
    expect((await api('/api/invocations/inv-A/actions', post)).status).toBe(405);

    await stop();
    await start();
    const again = (await api<InvocationPage>('/api/invocations')).body;
    expect(again.items.map((i) => [i.id, i.actions.executed, i.actions.cached])).toEqual([
      ['inv-C', 0, 0],
      ['inv-B', 0, 2],
      ['inv-A', 1, 0],
    ]);
    expect((await api<InvocationSummary>('/api/invocations/inv-B')).body.targets).toEqual(['//pkg:hello', '//pkg:other']);
    const restored = (await api<ActionPage>('/api/actions?invocation=inv-A')).body;
    expect(restored.total).toBe(1);
    expect(restored.items[0]).toMatchObject({ invocationId: 'inv-A', outcome: 'success', state: 'finished' });
    expect((await api<ActionPage>('/api/actions?outcome=cached')).body.total).toBe(2);
  });
});
