import { describe, expect, it } from 'vitest';
import { MetricSeries, windowRate } from './series';
import { metricsFixture } from './fixtures';

describe('windowRate', () => {
  it('computes hits over the window from cumulative counters', () => {
    expect(windowRate({ hits: 10, misses: 10 }, { hits: 13, misses: 11 })).toBe(0.75);
  });
  it('is null when nothing was looked up', () => {
    expect(windowRate({ hits: 5, misses: 5 }, { hits: 5, misses: 5 })).toBeNull();
  });
  it('falls back to cumulative after a counter reset', () => {
    expect(windowRate({ hits: 50, misses: 50 }, { hits: 1, misses: 3 })).toBe(0.25);
  });
});

describe('MetricSeries', () => {
  it('records one point per tick and ignores replays', () => {
    const s = new MetricSeries();
    s.push(metricsFixture({ at: 1000, queueDepth: 2 }));
    s.push(metricsFixture({ at: 2000, queueDepth: 5 }));
    s.push(metricsFixture({ at: 2000, queueDepth: 9 }));
    const [t, q] = s.columns(['queueDepth']);
    expect(t).toEqual([1, 2]);
    expect(q).toEqual([2, 5]);
  });

  it('derives utilization from busy slots', () => {
    const s = new MetricSeries();
    s.push(metricsFixture({ at: 1000, busySlots: 1, slotCount: 4 }));
    expect(s.latest('utilization')).toBe(0.25);
  });

  it('turns cumulative cache counters into a recent hit rate', () => {
    const s = new MetricSeries();
    s.push(metricsFixture({ at: 1000, acHits: 0, acMisses: 0 }));
    expect(s.latest('acHitRate')).toBeNull();
    s.push(metricsFixture({ at: 2000, acHits: 3, acMisses: 1 }));
    expect(s.latest('acHitRate')).toBe(0.75);
  });

  it('keeps at most `capacity` points', () => {
    const s = new MetricSeries(3);
    for (let i = 1; i <= 5; i++) s.push(metricsFixture({ at: i * 1000, queueDepth: i }));
    expect(s.length).toBe(3);
    expect(s.columns(['queueDepth'])).toEqual([[3, 4, 5], [3, 4, 5]]);
  });
});

describe('MetricSeries.seed', () => {
  const point = (at: number, queueDepth: number, busySlots: number) => ({
    at, queueDepth, running: busySlots, busySlots, slots: 4, acHits: at / 1000, acMisses: 0, casHits: 0, casMisses: 0,
    actionsPerSecond: 1, bytesInRate: 0, bytesOutRate: 0, storeBytes: 0, evictions: 0,
  });

  it("puts the engine's recorded hour before the live points, skipping what the page already has", () => {
    const s = new MetricSeries();
    s.push(metricsFixture({ at: 5000, queueDepth: 7 }));
    s.seed([point(2000, 1, 2), point(3000, 2, 4), point(5000, 99, 0)]);
    const [t, q, u] = s.columns(['queueDepth', 'utilization']);
    expect(t).toEqual([2, 3, 5]);
    expect(q).toEqual([1, 2, 7]);
    expect(u.slice(0, 2)).toEqual([0.5, 1]);
  });
});
