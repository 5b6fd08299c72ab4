// Pure: what the tray shows (icon variant, tooltip, status line) for a given state.
import type { FarmStatus, HealthProblem } from '../engine/common/farm-modes';
import type { TrayMetrics } from './engine-handle';

export type TrayStatus = 'idle' | 'executing' | 'paused' | 'error';
export const TRAY_STATUSES: readonly TrayStatus[] = ['idle', 'executing', 'paused', 'error'];

export interface TrayState {
  /** The engine is not up yet. */
  starting?: boolean;
  executionEnabled: boolean;
  metrics?: TrayMetrics;
  /** Why Kiln is unhealthy: the engine did not start, or the last action hit an internal error. */
  problem?: string;
  /** The polite farm: mode, slots and why, pause. */
  farm?: FarmStatus;
  /** The worst named health problem, if any. */
  worst?: HealthProblem;
}

export function trayStatus(s: TrayState): TrayStatus {
  if (s.problem !== undefined || s.worst?.severity === 'error') return 'error';
  if (s.starting) return 'idle';
  if (!s.executionEnabled || s.farm?.paused) return 'paused';
  if (s.metrics && (s.metrics.running > 0 || s.metrics.queueDepth > 0)) return 'executing';
  return 'idle';
}

const STATUS_TEXT: Record<TrayStatus, string> = {
  idle: 'idle',
  executing: 'executing',
  paused: 'execution paused (cache still serving)',
  error: 'problem',
};

export function statusLine(s: TrayState): string {
  const status = trayStatus(s);
  if (s.problem !== undefined) return `Kiln — ${s.problem}`;
  if (status === 'error' && s.worst) return `Kiln — ${s.worst.title.toLowerCase()}`;
  if (status === 'paused' && s.executionEnabled && s.farm?.paused) return `Kiln — farm paused ${pausedUntil(s.farm.paused)}`;
  return `Kiln — ${s.starting ? 'starting…' : STATUS_TEXT[status]}`;
}

/** "until 14:05", or "until resumed". */
export function pausedUntil(paused: { until?: number }, timeZone?: string): string {
  if (paused.until === undefined) return 'until resumed';
  return `until ${new Date(paused.until).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', timeZone })}`;
}

/** Short on purpose: Windows cuts tray tooltips at 127 characters. */
export function trayTooltip(s: TrayState): string {
  const lines = [truncate(statusLine(s), 80)];
  // The worst problem in words (second, so a cut tooltip keeps it), unless the status line says it already.
  if (s.worst && s.problem === undefined && trayStatus(s) !== 'error') lines.push(truncate(s.worst.title, 60));
  if (s.metrics) {
    const { queueDepth, running, actionCache } = s.metrics;
    const rate = actionCache.rate === null ? '–' : `${Math.round(actionCache.rate * 100)}%`;
    lines.push(`${running} running · ${queueDepth} queued · cache hits ${rate}`);
  }
  if (s.farm && !s.farm.paused) lines.push(truncate(s.farm.summary, 60));
  return lines.join('\n');
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
