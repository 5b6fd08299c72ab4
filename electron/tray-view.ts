// Pure: what the tray shows (icon variant, tooltip, status line) for a given state.
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
}

export function trayStatus(s: TrayState): TrayStatus {
  if (s.problem !== undefined) return 'error';
  if (s.starting) return 'idle';
  if (!s.executionEnabled) return 'paused';
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
  if (status === 'error') return `Kiln — ${s.problem}`;
  return `Kiln — ${s.starting ? 'starting…' : STATUS_TEXT[status]}`;
}

/** Short on purpose: Windows cuts tray tooltips at 127 characters. */
export function trayTooltip(s: TrayState): string {
  const lines = [truncate(statusLine(s), 80)];
  if (s.metrics) {
    const { queueDepth, running, actionCache } = s.metrics;
    const rate = actionCache.rate === null ? '–' : `${Math.round(actionCache.rate * 100)}%`;
    lines.push(`${running} running · ${queueDepth} queued · cache hits ${rate}`);
  }
  return lines.join('\n');
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
