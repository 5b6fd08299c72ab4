// The invocation page's Gantt: one lane per worker slot over real time, each
// action a bar from when it started to when it finished (or now), preceded by
// its wait in the queue. Cache hits ran nowhere; they get their own lane of ticks.
import type { ActionSummary } from '../../../engine/common/api-types';

export interface TimelineBar {
  id: string;
  queuedAt: number;
  /** Absent while still queued. */
  startedAt?: number;
  end: number;
  outcome?: ActionSummary['outcome'];
  state: ActionSummary['state'];
}

export interface TimelineLane {
  /** Slot number, or 'cache' for hits and 'queue' for actions still waiting. */
  key: number | 'cache' | 'queue';
  label: string;
  bars: TimelineBar[];
}

export interface Timeline {
  start: number;
  end: number;
  lanes: TimelineLane[];
}

export function buildTimeline(actions: readonly ActionSummary[], now: number): Timeline {
  const slots = new Map<number, TimelineBar[]>();
  const cache: TimelineBar[] = [];
  const queue: TimelineBar[] = [];
  let start = Infinity;
  let end = -Infinity;
  for (const a of actions) {
    const finish = a.finishedAt ?? now;
    const bar: TimelineBar = { id: a.id, queuedAt: a.queuedAt, startedAt: a.startedAt, end: finish, outcome: a.outcome, state: a.state };
    start = Math.min(start, a.queuedAt);
    end = Math.max(end, finish);
    if (a.cached) cache.push(bar);
    else if (a.slot !== undefined && a.startedAt !== undefined) {
      if (!slots.has(a.slot)) slots.set(a.slot, []);
      slots.get(a.slot)!.push(bar);
    } else if (a.state === 'queued') queue.push(bar);
  }
  const lanes: TimelineLane[] = [...slots.entries()]
    .sort(([a], [b]) => a - b)
    .map(([slot, bars]) => ({ key: slot, label: `Slot ${slot + 1}`, bars: bars.sort((x, y) => x.queuedAt - y.queuedAt) }));
  if (queue.length) lanes.push({ key: 'queue', label: 'Queued', bars: queue });
  if (cache.length) lanes.push({ key: 'cache', label: 'Cache hits', bars: cache });
  if (!Number.isFinite(start)) return { start: now, end: now, lanes };
  return { start, end: Math.max(end, start + 1), lanes };
}

/** Round tick times for an axis across [start, end], about `count` of them. */
export function timeTicks(start: number, end: number, count = 6): number[] {
  const span = Math.max(1, end - start);
  const steps = [100, 250, 500, 1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 21600e3, 43200e3, 86400e3];
  const step = steps.find((s) => span / s <= count) ?? steps[steps.length - 1];
  const ticks: number[] = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) ticks.push(t);
  return ticks;
}
