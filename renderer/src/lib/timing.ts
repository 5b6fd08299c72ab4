// The timing bar of an action: its phases as fractions of the whole.
import type { ActionTiming } from '../../../engine/common/api-types';

export interface TimingSegment {
  key: 'queued' | 'inputs' | 'run' | 'upload';
  label: string;
  ms: number;
  /** Share of the bar in [0, 1]. */
  fraction: number;
}

export function timingSegments(t: ActionTiming): TimingSegment[] {
  const parts: Omit<TimingSegment, 'fraction'>[] = [
    { key: 'queued', label: 'Queued', ms: t.queuedMs },
    { key: 'inputs', label: 'Input staging', ms: t.inputFetchMs },
    { key: 'run', label: 'Run', ms: t.executionMs },
    { key: 'upload', label: 'Upload', ms: t.outputUploadMs },
  ];
  const sum = parts.reduce((s, p) => s + Math.max(0, p.ms || 0), 0);
  return parts.map((p) => ({ ...p, ms: Math.max(0, p.ms || 0), fraction: sum > 0 ? Math.max(0, p.ms || 0) / sum : 0 }));
}

/** Quotes argv for display as a shell command line (POSIX single quotes). */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
