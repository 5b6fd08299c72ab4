// What the action drawer shows first: the log where a failure is, and which
// stage a running action is in, with its time against its timeout.
import type { ActionDetail, ActionStage, LogStreamName } from '../../../engine/common/api-types';

/** stderr for a failed run (non-zero exit, timeout, error) or when stdout is empty and stderr is not. */
export function initialLogTab(
  d: Pick<ActionDetail, 'outcome' | 'exitCode' | 'stdoutDigest' | 'stderrDigest'>,
  sizes?: { stdout: number; stderr: number },
): LogStreamName {
  const failed = (d.exitCode !== undefined && d.exitCode !== 0) || d.outcome === 'failure' || d.outcome === 'timeout' || d.outcome === 'error';
  if (failed) return 'stderr';
  const size = (digest: string | undefined) => Number(digest?.split('/')[1] ?? 0);
  const out = sizes?.stdout ?? size(d.stdoutDigest);
  const err = sizes?.stderr ?? size(d.stderrDigest);
  return out === 0 && err > 0 ? 'stderr' : 'stdout';
}

export const STAGE_LABELS: Record<ActionStage, string> = {
  queued: 'Waiting for a worker slot',
  'fetching-inputs': 'Staging inputs',
  running: 'Running',
  'uploading-outputs': 'Uploading outputs',
  finished: 'Finished',
};

/** "Running · 12 s of 15 min" — elapsed since the slot took it, against its timeout. */
export function stageLine(stage: ActionStage, elapsed: string, timeout?: string): string {
  if (stage === 'finished') return STAGE_LABELS.finished;
  return `${STAGE_LABELS[stage]} · ${elapsed}${timeout ? ` of ${timeout}` : ''}`;
}
