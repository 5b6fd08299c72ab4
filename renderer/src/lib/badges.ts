// How an action's state reads at a glance: a word and a tone.
import type { ActionSummary } from '../../../engine/common/api-types';

export type Tone = 'ok' | 'bad' | 'warn' | 'info' | 'accent' | 'neutral';

const STAGE_TEXT: Record<string, string> = {
  'fetching-inputs': 'Staging inputs',
  running: 'Running',
  'uploading-outputs': 'Uploading',
};

export function badgeFor(a: Pick<ActionSummary, 'state' | 'outcome' | 'cached' | 'stage'>): { text: string; tone: Tone } {
  if (a.state === 'queued') return { text: 'Queued', tone: 'neutral' };
  if (a.state === 'running') return { text: STAGE_TEXT[a.stage] ?? 'Running', tone: 'accent' };
  if (a.cached || a.outcome === 'cached') return { text: 'Cached', tone: 'info' };
  switch (a.outcome) {
    case 'success':
      return { text: 'Succeeded', tone: 'ok' };
    case 'failure':
      return { text: 'Failed', tone: 'bad' };
    case 'timeout':
      return { text: 'Timed out', tone: 'bad' };
    case 'cancelled':
      return { text: 'Cancelled', tone: 'warn' };
    case 'error':
      return { text: 'Error', tone: 'bad' };
    default:
      return { text: 'Finished', tone: 'neutral' };
  }
}

/** Elapsed time of an action: final when finished, growing with `now` while it runs. */
export function elapsedMs(a: Pick<ActionSummary, 'state' | 'queuedAt' | 'startedAt' | 'finishedAt' | 'durationMs'>, now: number): number | undefined {
  if (a.state === 'finished') return a.durationMs ?? (a.finishedAt !== undefined ? a.finishedAt - a.queuedAt : undefined);
  return Math.max(0, now - a.queuedAt);
}
