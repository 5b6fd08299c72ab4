// GET /api/cache/largest: the Cache view's "Largest blobs", checked against a stub
// source (limits, errors, the short-lived cache) and through a real Engine's store.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../../engine/digest';
import { EventBus } from '../../engine/events/event-bus';
import { ActionHistory } from '../../engine/history/action-history';
import type { ApiError, ApiStatus, LargestBlobs } from '../../engine/common/api-types';
import { HttpApi, type HttpApiOptions } from '../../engine/http/server';
import { LogHub } from '../../engine/logs/log-hub';
import { MetricsCollector } from '../../engine/metrics/collector';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { tempDir } from './helpers';

function stubSource() {
  const calls: number[] = [];
  const source = (limit: number): LargestBlobs => {
    calls.push(limit);
    const items = Array.from({ length: Math.min(limit, 250) }, (_, i) => ({ hash: `h${i}-${calls.length}`, size: 1_000 - i, fn: 'sha256' }));
    return { items, storeBytes: 500_000, at: 42 };
  };
  return { calls, source };
}

async function startApi(extra: Partial<HttpApiOptions>) {
  const tmp = tempDir();
  const bus = new EventBus();
  const logs = new LogHub({ dir: join(tmp.dir, 'logs') });
  const metrics = new MetricsCollector(bus, { concurrency: 1, storeStats: () => ({ bytes: 1, blobs: 1, budgetBytes: 100 }) });
  const api = new HttpApi({
    host: '127.0.0.1', port: 0, token: 'tok', requireTokenOnLoopback: false, bus, metrics, history: new ActionHistory(), logs,
    rendererDir: join(tmp.dir, 'renderer'),
    status: () => ({}) as ApiStatus,
    setExecution: () => {},
    ...extra,
  });
  const { url } = await api.listen();
  const get = async (path: string, init?: RequestInit) => {
    const res = await fetch(new URL(path, url), init);
    return { status: res.status, body: (await res.json()) as any };
  };
  const close = async () => {
    await api.close();
    metrics.stop();
    logs.close();
    tmp.cleanup();
  };
  return { get, close };
}

describe('GET /api/cache/largest', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it('answers 20 by default, up to 200, from one listing of the top 200 reused for the cache period', async () => {
    const stub = stubSource();
    const t = await startApi({ largestBlobs: stub.source, largestCacheMs: 60 * 60_000 });
    close = t.close;
    const first = await t.get('/api/cache/largest');
    expect(first.status).toBe(200);
    const body = first.body as LargestBlobs;
    expect(body.items).toHaveLength(20);
    expect(body.items[0]).toEqual({ hash: 'h0-1', size: 1_000, fn: 'sha256' });
    expect(body).toMatchObject({ storeBytes: 500_000, at: 42 });
    expect((await t.get('/api/cache/largest?limit=200')).body.items).toHaveLength(200);
    expect((await t.get('/api/cache/largest?limit=3')).body.items.map((i: { hash: string }) => i.hash)).toEqual(['h0-1', 'h1-1', 'h2-1']);
    // Three requests with different limits, one scan of the store, always for the maximum.
    expect(stub.calls).toEqual([200]);
  });

  it('lists afresh once the cached listing has expired', async () => {
    const stub = stubSource();
    const t = await startApi({ largestBlobs: stub.source, largestCacheMs: 0 });
    close = t.close;
    expect((await t.get('/api/cache/largest?limit=1')).body.items[0].hash).toBe('h0-1');
    expect((await t.get('/api/cache/largest?limit=1')).body.items[0].hash).toBe('h0-2');
    expect(stub.calls).toEqual([200, 200]);
  });

  it('refuses bad limits with a message, other methods, and stores that cannot list', async () => {
    const stub = stubSource();
    const t = await startApi({ largestBlobs: stub.source });
    close = t.close;
    for (const bad of ['0', '201', '-1', '1.5', 'abc', '']) {
      const r = await t.get(`/api/cache/largest?limit=${bad}`);
      expect(r.status, `limit=${bad}`).toBe(400);
      expect((r.body as ApiError).error.message).toBe(`limit must be an integer from 1 to 200, not "${bad}"`);
    }
    expect(stub.calls).toEqual([]);
    expect((await t.get('/api/cache/largest', { method: 'POST', headers: { Authorization: 'Bearer tok' } })).status).toBe(405);
    expect((await t.get('/api/cache/largest/x')).status).toBe(404);
    expect((await t.get('/api/cache')).status).toBe(404);
    await t.close();

    const bare = await startApi({});
    close = bare.close;
    const r = await bare.get('/api/cache/largest');
    expect(r.status).toBe(404);
    expect((r.body as ApiError).error.message).toMatch(/cannot list its largest blobs/);
  });
});

describe('GET /api/cache/largest on a real engine', () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await startTestEngine();
  }, 60_000);
  afterAll(() => t?.stop());

  it("lists the engine store's largest blobs with the store size", async () => {
    const { engine } = t;
    const blobs = [];
    for (const [n, fn] of [[300, 'sha256'], [100, 'sha256'], [500, 'blake3']] as const) {
      const data = Buffer.alloc(n, n % 251);
      const digest = await digestOf(data, fn);
      await engine.store.writeAll(digest, data);
      blobs.push(digest);
    }
    const res = await fetch(`${engine.httpUrl}api/cache/largest?limit=2`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as LargestBlobs;
    expect(body.items).toEqual([
      { hash: blobs[2]!.hash, size: 500, fn: 'blake3' },
      { hash: blobs[0]!.hash, size: 300, fn: 'sha256' },
    ]);
    expect(body.storeBytes).toBe(engine.store.stats().bytes);
    expect(body.storeBytes).toBe(900);
  }, 30_000);
});
