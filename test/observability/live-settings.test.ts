// Worker slots and the cache budget changed from the dashboard (PUT /api/settings):
// they apply to the running engine at once, are saved in settings.json, and are
// used at the next start unless a flag or the config file sets them.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, type RawSettings } from '../../engine/config-load';
import { MiB } from '../../engine/config';
import { Engine } from '../../engine/engine';
import type { ApiStatus, SettingsResponse } from '../../engine/common/api-types';
import { startTestEngine, type TestEngine, type TestEngineOptions } from '../helpers/engine';
import { digestOf, randomBlob } from '../helpers/blobs';
import { FakeExecutor } from '../execution/fake-executor';
import { executeRequest, uploadAction } from '../execution/harness';
import { waitFor } from './helpers';
import { REQUEST_METADATA_HEADER } from '../../engine/grpc/services';
import { reapi } from '../../engine/proto';
import { connectClients, grpc } from '../helpers';

let t: TestEngine | undefined;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await t?.stop();
  t = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function call(engine: Engine, path: string, init: { method?: string; body?: unknown; token?: string | null } = {}) {
  const token = init.token === undefined ? engine.httpToken : init.token;
  const res = await fetch(new URL(path, engine.httpUrl), {
    method: init.method ?? 'GET',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  return { status: res.status, json: (await res.json()) as any };
}
const put = (engine: Engine, body: unknown, token?: string | null) => call(engine, '/api/settings', { method: 'PUT', body, token });
const status = async (engine: Engine) => (await call(engine, '/api/status')).json as ApiStatus;

describe('live settings on a running engine', () => {
  it('raising concurrency starts a queued action at once; lowering it leaves running ones alone', async () => {
    const executor = new FakeExecutor();
    t = await startTestEngine({ executor, config: { concurrency: 1 } } as TestEngineOptions);
    const { engine, clients: c } = t;
    for (const salt of ['a', 'b', 'c']) {
      const digest = await uploadAction(c, { argv: ['/bin/true'], salt });
      c.execution.execute.collect(executeRequest(digest)).catch(() => {});
    }
    await executor.started(1);
    await waitFor(() => engine.scheduler!.view().queueDepth === 2, 'two queued actions');
    expect(executor.runs).toHaveLength(1);

    const raised = await put(engine, { concurrency: 3 });
    expect(raised.status).toBe(200);
    expect(raised.json).toMatchObject({ concurrency: 3, appliedNow: ['concurrency'], appliedAtRestart: [], restartRequired: false });
    expect(raised.json.message).toMatch(/Applied now and saved: 3 worker slots/);
    await executor.started(3);
    expect((await status(engine)).concurrency).toBe(3);
    expect(engine.metrics.snapshot().slots.map((s) => s.slot)).toEqual([0, 1, 2]);
    expect(JSON.parse(await readFile(join(t.dataDir, 'settings.json'), 'utf8'))).toEqual({ concurrency: 3 });

    const lowered = await put(engine, { concurrency: 1 });
    expect(lowered.json).toMatchObject({ concurrency: 1, appliedNow: ['concurrency'] });
    expect(executor.runs.every((r) => !r.signal.aborted)).toBe(true);
    // Slots 1 and 2 stay in the metrics while busy, and go once their actions finish.
    expect(engine.metrics.snapshot().slots).toHaveLength(3);
    executor.runs[1]!.finish();
    executor.runs[2]!.finish();
    await waitFor(() => engine.metrics.snapshot().slots.length === 1, 'the removed slots to go');
    expect(engine.scheduler!.view()).toMatchObject({ concurrency: 1, running: 1 });
    expect((await status(engine)).concurrency).toBe(1);
    executor.runs[0]!.finish();
  });

  it('lowering the cache budget evicts down to it and reports the new budget', async () => {
    t = await startTestEngine({ executor: new FakeExecutor(), config: { cacheSizeBytes: 1024 * MiB } } as TestEngineOptions);
    const { engine } = t;
    expect(engine.store.setBudget).toBeTypeOf('function'); // ObservedBlobStore passes it through
    const digests = [];
    for (let i = 0; i < 3; i++) {
      const data = randomBlob(30 * MiB);
      const d = await digestOf(data);
      await engine.store.writeAll(d, data);
      digests.push(d);
    }
    expect(engine.metrics.snapshot().store.evictions).toBe(0);

    const res = await put(engine, { cacheSize: '64MiB' });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ cacheSizeBytes: 64 * MiB, appliedNow: ['cacheSize'], saved: { cacheSizeBytes: 64 * MiB } });
    expect(res.json.message).toMatch(/a cache budget of 64 MiB/);
    expect(await engine.store.has(digests[0]!)).toBe(false);
    expect(await engine.store.has(digests[2]!)).toBe(true);
    const store = engine.metrics.snapshot().store;
    expect(store).toMatchObject({ budgetBytes: 64 * MiB, evictions: 1 });
    expect(store.bytes).toBeLessThanOrEqual(64 * MiB);
    expect((await status(engine)).cacheBudgetBytes).toBe(64 * MiB);

    const raised = await put(engine, { cacheSize: 2 * 1024 ** 3 });
    expect(raised.json.cacheSizeBytes).toBe(2 * 1024 ** 3);
    expect(engine.store.stats().budgetBytes).toBe(2 * 1024 ** 3);
  });

  it('refuses bad values with 400 and a clear message, changing nothing', async () => {
    t = await startTestEngine({ executor: new FakeExecutor(), config: { concurrency: 2 } } as TestEngineOptions);
    const { engine } = t;
    const cases: [unknown, RegExp][] = [
      [{ concurrency: 0 }, /concurrency must be a whole number of worker slots from 1 to 1024, not 0/],
      [{ concurrency: 1025 }, /from 1 to 1024/],
      [{ concurrency: 2.5 }, /whole number/],
      [{ concurrency: '8' }, /whole number/],
      [{ cacheSize: '1MiB' }, /at least 64 MiB/],
      [{ cacheSize: 'lots' }, /cacheSize: "lots" is not a size/],
      [{ cacheSize: true }, /bytes or a size like "20GiB"/],
      // Checked as a whole: the good concurrency is not applied either.
      [{ concurrency: 5, cacheSize: '10MB' }, /at least 64 MiB/],
      [{ workers: 3 }, /unknown setting "workers"; the settings are: lan, concurrency, cacheSize/],
      [{}, /sets nothing/],
    ];
    for (const [body, message] of cases) {
      const res = await put(engine, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json.error.message).toMatch(message);
    }
    expect((await put(engine, { concurrency: 4 }, null)).status).toBe(401);
    const now = (await call(engine, '/api/settings')).json as SettingsResponse;
    expect(now).toMatchObject({ concurrency: 2, cacheSizeBytes: 1024 ** 3, saved: {} });
    expect(engine.scheduler!.concurrency).toBe(2);
    await expect(readFile(join(t.dataDir, 'settings.json'), 'utf8')).rejects.toThrow(/ENOENT/);
  });
});

describe('saved settings at the next start', () => {
  async function dataDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-live-settings-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  async function start(dir: string, flags: RawSettings = {}, configFile?: string): Promise<Engine> {
    const config = loadConfig({ flags: { 'data-dir': dir, port: '0', 'http-port': '0', ...flags }, configFile });
    const engine = await Engine.start({ config, executor: new FakeExecutor() });
    cleanups.push(() => engine.stop({ drainMs: 0 }));
    return engine;
  }

  it('uses the saved values after a restart, and flags or the config file win over them', async () => {
    const dir = await dataDir();
    const first = await start(dir, { concurrency: '2', 'cache-size': '1GiB' });
    const saved = await put(first, { concurrency: 3, cacheSize: '128MiB' });
    expect(saved.json).toMatchObject({ concurrency: 3, cacheSizeBytes: 128 * MiB, fixedAtStart: ['concurrency', 'cacheSize'] });
    // Applied now, but the flags this Kiln was started with will win at the next start: say so.
    expect(saved.json.message).toMatch(/A flag or the config file sets concurrency and cache-size when Kiln starts/);
    await first.stop({ drainMs: 0 });

    // No flags: the saved values.
    const second = await start(dir);
    expect(await status(second)).toMatchObject({ concurrency: 3, cacheBudgetBytes: 128 * MiB });
    expect(second.store.stats().budgetBytes).toBe(128 * MiB);
    expect(second.scheduler!.concurrency).toBe(3);
    const s2 = (await call(second, '/api/settings')).json as SettingsResponse;
    expect(s2).toMatchObject({ concurrency: 3, cacheSizeBytes: 128 * MiB, restartRequired: false, fixedAtStart: [] });
    await second.stop({ drainMs: 0 });

    // A flag wins for its key only; the config file too.
    const third = await start(dir, { concurrency: '5' });
    expect(await status(third)).toMatchObject({ concurrency: 5, cacheBudgetBytes: 128 * MiB });
    await third.stop({ drainMs: 0 });
    const file = join(dir, 'kiln.yaml');
    await writeFile(file, 'cache-size: 256MiB\n');
    const fourth = await start(dir, {}, file);
    expect(await status(fourth)).toMatchObject({ concurrency: 3, cacheBudgetBytes: 256 * MiB });
    expect((await call(fourth, '/api/settings')).json.fixedAtStart).toEqual(['cacheSize']);
  });

  it('applies the invocation history budget at once, trims the journal, and keeps it for the next start', async () => {
    const dir = await dataDir();
    const first = await start(dir);
    const c = connectClients(`127.0.0.1:${first.grpcPort}`);
    try {
      for (let i = 1; i <= 12; i++) {
        const m = new grpc.Metadata();
        m.set(REQUEST_METADATA_HEADER, Buffer.from(reapi.RequestMetadata.encode({ toolInvocationId: `inv-${i}` }).finish()));
        await new Promise<void>((resolve, reject) =>
          (c.raw.ContentAddressableStorage as unknown as { findMissingBlobs(r: object, m: grpc.Metadata, cb: (e: Error | null) => void): void }).findMissingBlobs(
            { blobDigests: [] },
            m,
            (e) => (e ? reject(e) : resolve()),
          ),
        );
      }
    } finally {
      c.close();
    }
    expect((await call(first, '/api/invocations')).json.total).toBe(12);
    const res = await put(first, { invocationHistory: 10, invocationHistoryDays: 30 });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ invocationHistory: 10, invocationHistoryDays: 30, appliedNow: ['invocationHistory', 'invocationHistoryDays'] });
    expect(res.json.message).toMatch(/Applied now and saved: a history of 10 invocations, invocations kept for 30 days/);
    const list = (await call(first, '/api/invocations?limit=100')).json;
    expect(list.total).toBe(10);
    expect(list.items.at(-1).id).toBe('inv-3'); // The two oldest went.
    const journal = (await readFile(join(dir, 'history', 'journal.jsonl'), 'utf8')).split('\n').filter(Boolean);
    expect(journal.filter((l) => 'invocation' in JSON.parse(l))).toHaveLength(10);
    for (const [body, message] of [
      [{ invocationHistory: 5 }, /from 10 to 100000, not 5/],
      [{ invocationHistoryDays: 0 }, /whole number of days from 1 to 365, not 0/],
    ] as const) {
      const bad = await put(first, body);
      expect(bad.status).toBe(400);
      expect(bad.json.error.message).toMatch(message);
    }
    await first.stop({ drainMs: 0 });

    const second = await start(dir);
    expect((await call(second, '/api/settings')).json).toMatchObject({ invocationHistory: 10, invocationHistoryDays: 30, restartRequired: false });
    expect((await call(second, '/api/invocations')).json.total).toBe(10);
    await second.stop({ drainMs: 0 });
    const third = await start(dir, { 'invocation-history': '20' });
    expect((await call(third, '/api/settings')).json).toMatchObject({ invocationHistory: 20, invocationHistoryDays: 30, fixedAtStart: ['invocationHistory'] });
  });
});
