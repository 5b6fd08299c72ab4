// Builders for API shapes, shared by unit tests (and handy when sketching views).
import type { MetricsSnapshot, SlotSnapshot } from '../../../engine/common/api-types';

export interface MetricsFixtureInput {
  at?: number;
  queueDepth?: number;
  slotCount?: number;
  busySlots?: number;
  acHits?: number;
  acMisses?: number;
}

export function metricsFixture(o: MetricsFixtureInput = {}): MetricsSnapshot {
  const slotCount = o.slotCount ?? 2;
  const busy = o.busySlots ?? 0;
  const slots: SlotSnapshot[] = Array.from({ length: slotCount }, (_, i) => ({
    slot: i,
    busy: i < busy,
    utilization1m: i < busy ? 1 : 0,
    utilization1h: 0,
    current: i < busy ? { id: `op-${i}`, argv0: '/bin/sh', since: (o.at ?? 0) - 1000 } : undefined,
  }));
  const hits = o.acHits ?? 0;
  const misses = o.acMisses ?? 0;
  return {
    at: o.at ?? 0,
    queueDepth: o.queueDepth ?? 0,
    running: busy,
    slots,
    utilization1m: busy / slotCount,
    utilization1h: 0,
    actionCache: { hits, misses, rate: hits + misses ? hits / (hits + misses) : null },
    cas: { hits: 0, misses: 0, rate: null },
    bytes: { inTotal: 0, outTotal: 0, inRate: 0, outRate: 0 },
    store: { bytes: 0, budgetBytes: 1024, blobs: 0, evictions: 0 },
    actions: {
      perSecond: 0,
      finishedTotal: 0,
      byOutcome: { success: 0, failure: 0, timeout: 0, cancelled: 0, error: 0, cached: 0 },
    },
    histograms: {
      durationMs: { unit: 'ms', buckets: [], sum: 0, count: 0 },
      queueTimeMs: { unit: 'ms', buckets: [], sum: 0, count: 0 },
    },
    host: null,
    authRejections: 0,
    executionEnabled: true,
  };
}
