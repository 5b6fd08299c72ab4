// GET /api/assets: the Cache view's "Remote downloads", from asset.fetched events
// on the bus, newest first, filtered by Bazel's invocation id.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AssetFetchList } from '../../engine/common/api-types';
import { AssetFetchLog } from '../../engine/history/asset-fetch-log';
import { EventBus } from '../../engine/events/event-bus';
import { startTestEngine, type TestEngine } from '../helpers/engine';

describe('AssetFetchLog', () => {
  it('keeps the newest fetches up to its capacity, newest first, by invocation', () => {
    const bus = new EventBus();
    const log = new AssetFetchLog(3);
    log.attach(bus);
    for (const [i, inv] of ['a', 'b', 'a', 'a'].entries()) {
      bus.emit({ type: 'asset.fetched', at: i, uri: `https://x/${i}`, outcome: 'downloaded', bytes: i, durationMs: 1, toolInvocationId: inv });
    }
    expect(log.list().map((r) => r.uri)).toEqual(['https://x/3', 'https://x/2', 'https://x/1']);
    expect(log.list('a').map((r) => r.at)).toEqual([3, 2]);
    expect(log.list()[0]).not.toHaveProperty('type');
  });
});

describe('GET /api/assets on a real engine', () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await startTestEngine();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('lists what the Fetch service answered, filtered by invocation', async () => {
    // A refused download is still a fetch the user wants to see.
    const res = await t.clients.asset.fetchBlob({ uris: ['http://127.0.0.1:1/nothing-listens-here.tar.gz'] });
    expect(res.status?.code).toBeGreaterThan(0);
    const url = new URL('/api/assets', t.engine.httpUrl);
    const body = (await (await fetch(url, { headers: { authorization: `Bearer ${t.engine.httpToken}` } })).json()) as AssetFetchList;
    expect(body.items).toHaveLength(1);
    expect(body.items[0]).toMatchObject({ uri: 'http://127.0.0.1:1/nothing-listens-here.tar.gz', outcome: 'failed' });
    expect(body.items[0]!.message).toMatch(/cannot download/);
    const other = new URL('/api/assets?invocation=other', t.engine.httpUrl);
    const none = (await (await fetch(other, { headers: { authorization: `Bearer ${t.engine.httpToken}` } })).json()) as AssetFetchList;
    expect(none.items).toEqual([]);
  });
});
