// The farm's slots over time, as the Workers view charts them, and the words
// for modes and pauses. Pure: unit-tested without a browser.
import type { FarmMode, HealthProblem, SlotPoint } from '../../../engine/common/farm-modes';

/** How far back the chart reaches (the engine keeps an hour). */
export const CHART_MS = 60 * 60_000;
const MAX_POINTS = 2_000;

export const MODE_TEXT: Record<FarmMode, { label: string; hint: string }> = {
  polite: { label: 'Polite', hint: 'Background priority; slots follow the machine (busy CPUs, you at the keyboard, battery).' },
  normal: { label: 'Normal', hint: 'The configured slots at normal priority.' },
  'all-out': { label: 'All-out', hint: 'Every core at normal priority.' },
};

/** Appends a point when the slots changed (the history is a step function). */
export function withSlotPoint(history: readonly SlotPoint[], point: SlotPoint): SlotPoint[] {
  const last = history[history.length - 1];
  if (last && last.slots === point.slots) return [...history];
  const next = [...history, point];
  return next.length > MAX_POINTS ? next.slice(next.length - MAX_POINTS) : next;
}

/**
 * uPlot data for a stepped line from `now - CHART_MS` to `now`: each change
 * becomes two points (the old value up to it, the new one from it), so plain
 * line drawing shows steps. Seconds, as uPlot's time scale wants.
 */
export function slotChartData(history: readonly SlotPoint[], now: number): [number[], number[]] {
  const from = now - CHART_MS;
  const xs: number[] = [];
  const ys: number[] = [];
  // The value at the left edge: the last change before it.
  let current: number | undefined;
  for (const p of history) if (p.at <= from) current = p.slots;
  if (current !== undefined) {
    xs.push(from / 1000);
    ys.push(current);
  }
  for (const p of history) {
    if (p.at <= from || p.at > now) continue;
    if (current !== undefined) {
      xs.push(p.at / 1000);
      ys.push(current);
    }
    xs.push(p.at / 1000);
    ys.push(p.slots);
    current = p.slots;
  }
  if (current !== undefined) {
    xs.push(now / 1000);
    ys.push(current);
  }
  return [xs, ys];
}

/** "until 14:05" or "until you resume it". */
export function pauseText(paused: { until?: number }): string {
  if (paused.until === undefined) return 'until you resume it';
  return `until ${new Date(paused.until).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`;
}

/** The banner's tone for a problem. */
export function problemTone(p: HealthProblem): 'bad' | 'warn' | 'info' {
  return p.severity === 'error' ? 'bad' : p.severity === 'warning' ? 'warn' : 'info';
}
