// Records the engine's figures over time: a point a second for the last hour,
// and a point a minute (gauges averaged over the minute, counters as at its
// end) for the last day, in fixed-size rings. GET /api/metrics/history serves them.
import { systemClock, type Clock } from '../clock';
import type { MetricsSnapshot } from '../common/api-types';
import type { MetricsHistory, MetricsPoint, MetricsWindow } from '../common/metrics-history-types';

const HOUR_POINTS = 3_600;
const DAY_POINTS = 1_440;

export class SeriesRecorder {
  private readonly seconds: MetricsPoint[] = [];
  private readonly minutes: MetricsPoint[] = [];
  private minute: MetricsPoint[] = [];
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly snapshot: () => MetricsSnapshot,
    private readonly clock: Clock = systemClock,
  ) {}

  start(intervalMs = 1_000): void {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Takes one point now (the timer calls this each second). */
  sample(): void {
    const p = pointOf(this.snapshot(), this.clock.now());
    push(this.seconds, p, HOUR_POINTS);
    this.minute.push(p);
    if (this.minute.length >= 60) {
      push(this.minutes, averaged(this.minute), DAY_POINTS);
      this.minute = [];
    }
  }

  history(window: MetricsWindow): MetricsHistory {
    return window === 'hour'
      ? { window, stepMs: 1_000, points: this.seconds.slice() }
      : { window, stepMs: 60_000, points: this.minutes.slice() };
  }
}

function push(ring: MetricsPoint[], p: MetricsPoint, max: number): void {
  ring.push(p);
  if (ring.length > max) ring.splice(0, ring.length - max);
}

export function pointOf(m: MetricsSnapshot, at: number): MetricsPoint {
  return {
    at,
    queueDepth: m.queueDepth,
    running: m.running,
    busySlots: m.slots.filter((s) => s.busy).length,
    slots: m.slots.length,
    acHits: m.actionCache.hits,
    acMisses: m.actionCache.misses,
    casHits: m.cas.hits,
    casMisses: m.cas.misses,
    actionsPerSecond: m.actions.perSecond,
    bytesInRate: m.bytes.inRate,
    bytesOutRate: m.bytes.outRate,
    storeBytes: m.store.bytes,
    evictions: m.store.evictions,
  };
}

/** Gauges averaged over the points, cumulative counters and the time taken from the last. */
function averaged(points: MetricsPoint[]): MetricsPoint {
  const last = points[points.length - 1];
  const mean = (k: keyof MetricsPoint) => points.reduce((s, p) => s + p[k], 0) / points.length;
  return {
    ...last,
    queueDepth: mean('queueDepth'),
    running: mean('running'),
    busySlots: mean('busySlots'),
    slots: mean('slots'),
    actionsPerSecond: mean('actionsPerSecond'),
    bytesInRate: mean('bytesInRate'),
    bytesOutRate: mean('bytesOutRate'),
  };
}
