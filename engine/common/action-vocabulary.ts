// The words every layer uses about an action: how it ended, where it is, what
// it produced. Declared here once, below events, metrics, history, the HTTP
// API and the dashboard, so none of them has to import another to agree.
// Pure declarations with no imports: the renderer uses this file too.

/** How a finished action ended; `cached` means answered from the action cache without running. */
export const ACTION_OUTCOMES = ['success', 'failure', 'timeout', 'cancelled', 'error', 'cached'] as const;
export type ActionOutcome = (typeof ACTION_OUTCOMES)[number];

export const ACTION_STATES = ['queued', 'running', 'finished'] as const;
export type ActionState = (typeof ACTION_STATES)[number];

/** The stages an executor reports while it works on an action. */
export type ExecutionStage = 'fetching-inputs' | 'running' | 'uploading-outputs';
/** An action's whole life: waiting, the executor's stages, done. */
export type ActionStage = 'queued' | ExecutionStage | 'finished';

/** What just happened to an action, as the history and the live event stream report it. */
export type ActionChangeKind = 'queued' | 'started' | 'stage' | 'finished' | 'control';

export type LogStreamName = 'stdout' | 'stderr';

export type OutputKind = 'file' | 'directory' | 'symlink';

/** One top-level output of an action, for the dashboard. */
export interface ActionOutputSummary {
  path: string;
  bytes: number;
  kind: OutputKind;
}

/** Where an action's time went, in milliseconds. */
export interface ActionTiming {
  queuedMs: number;
  inputFetchMs: number;
  executionMs: number;
  outputUploadMs: number;
  totalMs: number;
}
