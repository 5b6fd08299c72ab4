// Time series for the charts, built from successive metrics snapshots. Counters
// that only grow (cache hits) are turned into rates over a trailing window, so the
// chart shows how the cache does now rather than since the engine started.
import type { MetricsSnapshot } from '../../../engine/common/api-types';

export type SeriesKey =
  | 'queueDepth'
  | 'running'
  | 'utilization'
  | 'acHitRate'
  | 'casHitRate'
  | 'actionsPerSecond'
  | 'bytesInRate'
  | 'bytesOutRate'
  | 'storeBytes'
  | 'evictions';

const KEYS: SeriesKey[] = [
  'queueDepth',
  'running',
  'utilization',
  'acHitRate',
  'casHitRate',
  'actionsPerSecond',
  'bytesInRate',
  'bytesOutRate',
  'storeBytes',
  'evictions',
];

/** Snapshots over which hit rates are computed (~10 s at one tick per second). */
const HIT_WINDOW = 10;

export class MetricSeries {
  /** Seconds since the epoch, as uPlot expects. */
  private times: number[] = [];
  private values = new Map<SeriesKey, (number | null)[]>(KEYS.map((k) => [k, []]));
  private recent: MetricsSnapshot[] = [];

  constructor(private readonly capacity = 600) {}

  get length(): number {
    return this.times.length;
  }

  push(m: MetricsSnapshot): void {
    const lastT = this.times[this.times.length - 1];
    const t = m.at / 1000;
    if (lastT !== undefined && t <= lastT) return; // duplicate tick after a reconnect
    this.recent.push(m);
    if (this.recent.length > HIT_WINDOW + 1) this.recent.shift();
    const oldest = this.recent[0];

    const row: Record<SeriesKey, number | null> = {
      queueDepth: m.queueDepth,
      running: m.running,
      utilization: m.slots.length ? m.slots.filter((s) => s.busy).length / m.slots.length : m.utilization1m,
      acHitRate: windowRate(oldest.actionCache, m.actionCache),
      casHitRate: windowRate(oldest.cas, m.cas),
      actionsPerSecond: m.actions.perSecond,
      bytesInRate: m.bytes.inRate,
      bytesOutRate: m.bytes.outRate,
      storeBytes: m.store.bytes,
      evictions: m.store.evictions,
    };
    this.times.push(t);
    for (const k of KEYS) this.values.get(k)!.push(row[k]);
    if (this.times.length > this.capacity) {
      this.times.shift();
      for (const k of KEYS) this.values.get(k)!.shift();
    }
  }

  /** uPlot's data layout: [x values, ...one array per series]. Fresh arrays each call. */
  columns(keys: SeriesKey[]): [number[], ...(number | null)[][]] {
    return [this.times.slice(), ...keys.map((k) => this.values.get(k)!.slice())];
  }

  latest(key: SeriesKey): number | null | undefined {
    const v = this.values.get(key)!;
    return v[v.length - 1];
  }

  clear(): void {
    this.times = [];
    for (const k of KEYS) this.values.set(k, []);
    this.recent = [];
  }
}

/** Hit fraction between two cumulative readings; null when nothing was looked up. */
export function windowRate(
  before: { hits: number; misses: number },
  after: { hits: number; misses: number },
): number | null {
  const hits = after.hits - before.hits;
  const misses = after.misses - before.misses;
  // Counters reset when the engine restarts; fall back to the cumulative figure.
  if (hits < 0 || misses < 0) return after.hits + after.misses ? after.hits / (after.hits + after.misses) : null;
  return hits + misses > 0 ? hits / (hits + misses) : null;
}
