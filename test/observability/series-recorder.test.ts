// The engine's own record of its figures: a point a second for an hour, a
// point a minute for a day, and the route that serves them.
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import type { MetricsHistory, MetricsSnapshot } from '../../engine/common/api-types';
import { SeriesRecorder } from '../../engine/metrics/series-recorder';
import { startTestEngine, type TestEngine } from '../helpers';

function snapshot(over: { queueDepth: number; busy: number; acHits: number }): MetricsSnapshot {
  return {
    at: 0,
    queueDepth: over.queueDepth,
    running: over.busy,
    slots: [0, 1, 2, 3].map((slot) => ({ slot, busy: slot < over.busy, utilization1m: 0, utilization1h: 0 })),
    utilization1m: 0,
    utilization1h: 0,
    actionCache: { hits: over.acHits, misses: 1, rate: null },
    cas: { hits: 0, misses: 0, rate: null },
    bytes: { inTotal: 0, outTotal: 0, inRate: 10, outRate: 20 },
    store: { bytes: 5, budgetBytes: 10, blobs: 1, evictions: 0 },
    actions: { perSecond: 2, finishedTotal: 0, byOutcome: { success: 0, failure: 0, timeout: 0, cancelled: 0, error: 0, cached: 0 } },
    histograms: { durationMs: { unit: 'ms', buckets: [], sum: 0, count: 0 }, queueTimeMs: { unit: 'ms', buckets: [], sum: 0, count: 0 } },
    host: null,
    authRejections: 0,
    executionEnabled: true,
  };
}

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

describe('SeriesRecorder', () => {
  it('keeps an hour of seconds and a day of minute averages, counters as at the end of each minute', () => {
    const clock = new ManualClock();
    let n = 0;
    const rec = new SeriesRecorder(() => snapshot({ queueDepth: n % 2 ? 10 : 0, busy: n % 2 ? 4 : 0, acHits: n }), clock);
    for (n = 0; n < 3_700; n++) {
      clock.advance(1_000);
      rec.sample();
    }
    const hour = rec.history('hour');
    expect(hour.stepMs).toBe(1_000);
    expect(hour.points).toHaveLength(3_600);
    expect(hour.points.at(-1)).toMatchObject({ at: clock.now(), acHits: 3_699, busySlots: 4, slots: 4 });
    const day = rec.history('day');
    expect(day.stepMs).toBe(60_000);
    expect(day.points).toHaveLength(61); // 3,700 seconds make 61 whole minutes
    // Half the seconds had 10 queued and 4 busy: the minute's average says 5 and 2.
    expect(day.points[0]).toMatchObject({ queueDepth: 5, busySlots: 2, acHits: 59, bytesInRate: 10 });
  });

  it('is served at GET /api/metrics/history, and a wrong window is a 400 that says what is accepted', async () => {
    t = await startTestEngine();
    t.engine.observability.series.sample();
    const ok = await fetch(new URL('/api/metrics/history?window=hour', t.engine.httpUrl));
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as MetricsHistory;
    expect(body.points.length).toBeGreaterThanOrEqual(1);
    expect(body.points[0].slots).toBe(t.engine.liveSettings.concurrency);
    const bad = await fetch(new URL('/api/metrics/history?window=week', t.engine.httpUrl));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/"hour".*"day"/);
  });
});
