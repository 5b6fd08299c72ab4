// Time series for the charts, built from successive metrics snapshots. Counters
// that only grow (cache hits) are turned into rates over a trailing window, so the
// chart shows how the cache does now rather than since the engine started.
import type { MetricsPoint, MetricsSnapshot } from '../../../engine/common/api-types';

/** What a chart point needs: a live snapshot has it, and so does a recorded point (inputFromPoint). */
export type SeriesInput = Pick<MetricsSnapshot, 'at' | 'queueDepth' | 'running' | 'utilization1m'> & {
  slots: readonly { busy: boolean }[];
  actionCache: { hits: number; misses: number };
  cas: { hits: number; misses: number };
  actions: { perSecond: number };
  bytes: { inRate: number; outRate: number };
  store: { bytes: number; evictions: number };
};

/** A point of the engine's recorded series (GET /api/metrics/history) as chart input. */
export function inputFromPoint(p: MetricsPoint): SeriesInput {
  const busy = Math.round(p.busySlots);
  return {
    at: p.at,
    queueDepth: p.queueDepth,
    running: p.running,
    utilization1m: p.slots ? p.busySlots / p.slots : 0,
    slots: Array.from({ length: Math.round(p.slots) }, (_, i) => ({ busy: i < busy })),
    actionCache: { hits: p.acHits, misses: p.acMisses },
    cas: { hits: p.casHits, misses: p.casMisses },
    actions: { perSecond: p.actionsPerSecond },
    bytes: { inRate: p.bytesInRate, outRate: p.bytesOutRate },
    store: { bytes: p.storeBytes, evictions: p.evictions },
  };
}

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
  private recent: SeriesInput[] = [];

  /** An hour at one point a second, like the engine's own record. */
  constructor(private readonly capacity = 3_600) {}

  get length(): number {
    return this.times.length;
  }

  push(m: SeriesInput): void {
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

  /**
   * Puts the engine's recorded points before what this page has seen live, so a
   * chart opened now still shows the last hour. Points not older than the first
   * live one are ignored.
   */
  seed(points: readonly MetricsPoint[]): void {
    const first = this.times[0] ?? Infinity;
    const older = new MetricSeries(this.capacity);
    for (const p of points) if (p.at / 1000 < first) older.push(inputFromPoint(p));
    if (older.length === 0) return;
    this.times = [...older.times, ...this.times].slice(-this.capacity);
    for (const k of KEYS) this.values.set(k, [...older.values.get(k)!, ...this.values.get(k)!].slice(-this.capacity));
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
