// GET /api/metrics/history?window=hour|day: the engine's own record of its
// figures, so charts cover the last hour (a point a second) or day (a point a
// minute, gauges averaged over it) and not only what one page happened to see.
// Pure types; re-exported by api-types.ts.

export interface MetricsPoint {
  /** End of the interval (epoch ms). */
  at: number;
  queueDepth: number;
  running: number;
  /** Busy worker slots, and slots in all (utilization = busySlots / slots). */
  busySlots: number;
  slots: number;
  /** Cumulative since start, so a chart can compute hit rates over any window. */
  acHits: number;
  acMisses: number;
  casHits: number;
  casMisses: number;
  actionsPerSecond: number;
  bytesInRate: number;
  bytesOutRate: number;
  storeBytes: number;
  evictions: number;
}

export type MetricsWindow = 'hour' | 'day';

export interface MetricsHistory {
  window: MetricsWindow;
  /** Milliseconds between points: 1000 for the hour, 60000 for the day. */
  stepMs: number;
  /** Oldest first; gaps where the engine was not running. */
  points: MetricsPoint[];
}
