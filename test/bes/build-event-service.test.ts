// The Build Event Service through a real Engine: Bazel's events on
// PublishBuildToolEventStream are acknowledged in order and show up on the
// invocation (command line, targets, tests with a readable test.log, exit
// status); bad streams get INVALID_ARGUMENT and change nothing; all of it
// survives a restart on the same data folder.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type KilnConfig } from '../../engine/config';
import { Engine } from '../../engine/engine';
import { bes } from '../../engine/proto';
import { PublishBuildEventService } from '../../engine/grpc/services';
import type { InvocationPage, InvocationSummary } from '../../engine/common/api-types';
import { readFileSync } from 'node:fs';
import { connectClients, grpc, startTestEngine, Status, uploadBlob, type KilnClients } from '../helpers';
import { FakeExecutor } from '../execution/fake-executor';
import { bazelEvent, ordered, publishLifecycle, publishStream, testBuildEvents } from './bes-client';

let dataDir: string;
let engine: Engine | undefined;
let clients: KilnClients | undefined;

async function start(): Promise<KilnClients> {
  const config: KilnConfig = { ...defaultConfig(), host: '127.0.0.1', port: 0, httpPort: 0, dataDir, cacheSizeBytes: 1024 ** 3, concurrency: 1 };
  engine = await Engine.start({ config, executor: new FakeExecutor() });
  clients = connectClients(`127.0.0.1:${engine.grpcPort}`);
  return clients;
}

async function stop(): Promise<void> {
  clients?.close();
  await engine?.stop({ drainMs: 1_000 });
  engine = undefined;
  clients = undefined;
}

async function api<T>(path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(new URL(path, engine!.httpUrl));
  return { status: res.status, body: (await res.json()) as T };
}

const LOG = Buffer.from('exec ${PAGER:-/usr/bin/less} "$0" || exit 1\n-----\nPASS: check\n');

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'kiln-bes-'));
});

afterAll(async () => {
  await stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('Build Event Service', () => {
  it('acknowledges every event in order and files the build under its invocation, test.log readable, across a restart', async () => {
    const c = await start();
    const log = await uploadBlob(c, LOG);
    const uri = `bytestream://127.0.0.1:${engine!.grpcPort}/blobs/${log.hash}/${log.size}`;
    await publishLifecycle(c, {
      buildEvent: { streamId: { buildId: 'build-1', invocationId: 'inv-test', component: bes.StreamId.BuildComponent.CONTROLLER }, sequenceNumber: 1, event: { invocationAttemptStarted: { attemptNumber: 1 } } },
    });
    const events = testBuildEvents(uri);
    const acks = await publishStream(c, events.map((e, i) => ordered('inv-test', i + 1, e)));
    expect(acks).toEqual(events.map((_, i) => i + 1));

    const check = (inv: InvocationSummary) => {
      expect(inv.state).toBe('finished');
      const b = inv.build!;
      expect(b.command).toBe('test');
      expect(b.toolVersion).toBe('4.2.3');
      expect(b.commandLine).toEqual(['bazel', 'test', '--remote_executor=grpc://127.0.0.1:8980', '//pkg:all']);
      expect(b.patterns).toEqual(['//pkg:all']);
      expect(b.exitCode).toEqual({ name: 'SUCCESS', code: 0 });
      expect(b.startedAt).toBe(1_700_000_000_000);
      expect(b.finishedAt).toBe(1_700_000_005_000);
      expect(inv.durationMs).toBe(5_000);
      expect(b.targets).toEqual([
        { label: '//pkg:gen', kind: 'genrule rule', outcome: 'built' },
        { label: '//pkg:check', kind: 'sh_test rule', testSize: 'SMALL', outcome: 'built' },
        { label: '//pkg:windows_only', kind: 'sh_binary rule', outcome: 'skipped', reason: 'incompatible with the platform' },
      ]);
      expect(b.targetsTotal).toBe(3);
      expect(b.tests).toHaveLength(1);
      const [t] = b.tests;
      expect(t).toMatchObject({ label: '//pkg:check', status: 'PASSED', shardCount: 1, runCount: 1, totalRunCount: 1, durationMs: 1234 });
      expect(t.runs).toEqual([
        {
          run: 1, shard: 1, attempt: 1, status: 'PASSED', startedAt: 1_700_000_001_000, durationMs: 1234, strategy: 'remote',
          testLog: { name: 'test.log', uri, blob: { hash: log.hash, size: log.size } },
        },
      ]);
    };
    const one = await api<InvocationSummary>('/api/invocations/inv-test');
    expect(one.status).toBe(200);
    check(one.body);
    const list = await api<InvocationPage>('/api/invocations');
    // The list has the same build, each test without its runs (the invocation's own page has them).
    const listed = list.body.items.find((i) => i.id === 'inv-test')!;
    expect(listed.build).toEqual({ ...one.body.build, tests: one.body.build!.tests.map((t) => ({ ...t, runs: [] })) });

    const blob = await fetch(new URL(`/api/blobs/${log.hash}/${log.size}`, engine!.httpUrl));
    expect(blob.status).toBe(200);
    expect(blob.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(Buffer.from(await blob.arrayBuffer())).toEqual(LOG);
    const head = await fetch(new URL(`/api/blobs/${log.hash}/${log.size}?limit=5`, engine!.httpUrl));
    expect(await head.text()).toBe(LOG.subarray(0, 5).toString());

    await stop();
    await start();
    check((await api<InvocationSummary>('/api/invocations/inv-test')).body);
  });

  it('folds a retried stream once: events already folded are acknowledged again, not counted twice', async () => {
    const c = clients ?? (await start());
    const events = testBuildEvents('file:///tmp/test.log');
    await publishStream(c, events.slice(0, 5).map((e, i) => ordered('inv-retry', i + 1, e)));
    // Bazel reconnects and resends from the first event it has no ack for; say the last two acks were lost.
    const acks = await publishStream(c, events.slice(3).map((e, i) => ordered('inv-retry', i + 4, e)));
    expect(acks).toEqual(events.slice(3).map((_, i) => i + 4));
    const inv = (await api<InvocationSummary>('/api/invocations/inv-retry')).body;
    expect(inv.build!.events).toBe(events.length);
    const run = inv.build!.tests[0].runs[0];
    expect(run.testLog).toEqual({ name: 'test.log', uri: 'file:///tmp/test.log' });
  });

  it('answers bad streams with INVALID_ARGUMENT naming the problem, keeping what came before', async () => {
    const c = clients ?? (await start());
    const good = bazelEvent({ id: { started: {} }, started: { command: 'build', startTimeMillis: 1_700_000_000_000 } });
    const garbage: bes.IBuildEvent = { bazelEvent: { type_url: 'type.googleapis.com/build_event_stream.BuildEvent', value: Buffer.from([0x0a, 0xff, 0xff]) } };
    const cases: [string, bes.IPublishBuildToolEventStreamRequest[], RegExp, number[]][] = [
      ['bad-bytes', [ordered('inv-bad-1', 1, good), ordered('inv-bad-1', 2, garbage)], /event 2: bazel_event is not a valid build_event_stream.BuildEvent/, [1]],
      ['gap', [ordered('inv-bad-2', 1, good), ordered('inv-bad-2', 3, good)], /sequence_number 3 follows 1/, [1]],
      ['no id', [ordered('', 1, good)], /invocation_id is empty/, []],
      ['two ids', [ordered('inv-bad-3', 1, good), ordered('inv-bad-4', 2, good)], /one stream carries one invocation/, [1]],
      ['zero', [ordered('inv-bad-5', 0, good)], /sequence_number 0 is not valid/, []],
      ['no event', [{ orderedBuildEvent: { streamId: { invocationId: 'inv-bad-6' }, sequenceNumber: 1 } }], /event 1 is missing its BuildEvent/, []],
      ['empty', [{}], /ordered_build_event is missing/, []],
    ];
    for (const [name, requests, message, acked] of cases) {
      const err = (await publishStream(c, requests).then(
        () => { throw new Error(`${name}: the stream succeeded`); },
        (e) => e,
      )) as { code: number; details: string; acks: number[] };
      expect(err.code, name).toBe(Status.INVALID_ARGUMENT);
      expect(err.details, name).toMatch(message);
      expect(err.acks, name).toEqual(acked);
    }
    // Bytes that are no protobuf at all: the same status, from the stream's own check.
    const Raw = grpc.makeGenericClientConstructor(
      {
        stream: {
          ...PublishBuildEventService.publishBuildToolEventStream,
          requestSerialize: (b: Buffer) => b,
        },
      },
      'RawBes',
    );
    const raw = new Raw(`127.0.0.1:${engine!.grpcPort}`, grpc.credentials.createInsecure()) as unknown as { stream(): grpc.ClientDuplexStream<Buffer, unknown> };
    const rawError = await new Promise<grpc.ServiceError>((resolve) => {
      const call = raw.stream();
      call.on('data', () => {});
      call.on('error', resolve);
      call.write(Buffer.from([0x22, 0xff, 0xff, 0xff, 0x0f]));
      call.end();
    });
    expect(rawError.code).toBe(Status.INVALID_ARGUMENT);
    expect(rawError.details).toMatch(/PublishBuildToolEventStreamRequest is not a valid message/);
    (raw as unknown as grpc.Client).close();

    // What was acknowledged before the bad event is kept.
    expect((await api<InvocationSummary>('/api/invocations/inv-bad-1')).body.build?.command).toBe('build');

    const lifecycle = await publishLifecycle(c, {}).catch((e) => e);
    expect(lifecycle.code).toBe(Status.INVALID_ARGUMENT);
    expect(lifecycle.details).toMatch(/build_event is missing/);
    // Bazel's build-level lifecycle events name no invocation: accepted, nothing filed.
    await publishLifecycle(c, { buildEvent: { streamId: { buildId: 'b' }, sequenceNumber: 1, event: { buildEnqueued: {} } } });
    // And the server still serves.
    expect(await publishStream(c, [ordered('inv-after', 1, good)])).toEqual([1]);
  });

  it('serves a build that sent BES but ran nothing remotely, and refuses bad blob requests precisely', async () => {
    if (!clients) await start();
    const inv = (await api<InvocationSummary>('/api/invocations/inv-after')).body;
    expect(inv.actions).toEqual({ executed: 0, cached: 0, failed: 0, queued: 0, running: 0 });
    expect(inv.build?.command).toBe('build');
    expect(inv.state).toBe('running'); // No BuildFinished yet, and quiet for less than the idle time.

    const bad = await api<{ error: { message: string } }>('/api/blobs/XYZ/1');
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/not a SHA-256 hash/);
    const missing = await api<{ error: { message: string } }>(`/api/blobs/${'a'.repeat(64)}/10`);
    expect(missing.status).toBe(404);
    expect(missing.body.error.message).toMatch(/not in this Kiln's CAS/);
    expect((await api(`/api/blobs/${'a'.repeat(64)}/10?limit=-1`)).status).toBe(400);
  });
});

describe('Build Event Service access', () => {
  it('passes the same access policy as every other call: no token, UNAUTHENTICATED; a token, served', async () => {
    const t = await startTestEngine({ config: { requireTokenOnLoopback: true, tls: 'on' } });
    const c = connectClients(`127.0.0.1:${t.engine.grpcPort}`, grpc.credentials.createSsl(readFileSync(join(t.dataDir, 'tls', 'ca.pem'))));
    try {
      const events = [ordered('inv-auth', 1, bazelEvent({ id: { started: {} }, started: { command: 'build' } }))];
      const refused = (await publishStream(c, events).catch((e) => e)) as grpc.ServiceError;
      expect(refused.code).toBe(Status.UNAUTHENTICATED);
      const withToken = new grpc.Metadata();
      withToken.set('authorization', `Bearer ${t.engine.access.tokens.add('ci')}`);
      expect(await publishStream(c, events, withToken)).toEqual([1]);
    } finally {
      c.close();
      await t.stop();
    }
  }, 120_000);
});
