// The execution seam: the scheduler hands a prepared action to an Executor and
// gets an ActionResult back. The local process executor is the first; a
// sandboxing or remote executor can sit behind the same interface later.
import type { ActionOutputSummary, ExecutionStage } from '../common/action-vocabulary';
import type { BlobDigest } from '../digest';
import type { reapi } from '../proto';

export interface PreparedAction {
  /** Operation id; unique per execution. */
  id: string;
  instance: string;
  actionDigest: BlobDigest;
  action: reapi.Action;
  command: reapi.Command;
  /** Already clamped by the scheduler to the configured default/maximum. */
  timeoutMs: number;
  /** Where stdout/stderr go while the action runs (live readers tail these files). */
  stdoutPath: string;
  stderrPath: string;
}

export type { ExecutionStage };

export interface ExecutionHooks {
  /** Called as the action moves through its stages (for metadata updates and the dashboard). */
  onStage?(stage: ExecutionStage, at: number): void;
}

export interface ExecutionTimings {
  workerStart: number;
  inputFetchStart: number;
  inputFetchCompleted: number;
  executionStart: number;
  executionCompleted: number;
  outputUploadStart: number;
  outputUploadCompleted: number;
  workerCompleted: number;
}

export interface ExecutionOutcome {
  /** Outputs uploaded, stdout/stderr digests set, execution_metadata filled. */
  result: reapi.ActionResult;
  /** 'ok' includes non-zero exits. */
  status: 'ok' | 'timeout' | 'cancelled';
  timings: ExecutionTimings;
  inputFiles: number;
  inputBytes: number;
  outputs: ActionOutputSummary[];
  /** Hard-linked inputs the action modified (their blobs were dropped from the store); never cache such a result. */
  tamperedInputs?: string[];
}

export interface Executor {
  /**
   * Stages inputs, runs the command, collects and uploads outputs.
   * Rejects with a GrpcError for problems of the request (FAILED_PRECONDITION
   * with PreconditionFailure for missing inputs, INVALID_ARGUMENT for hostile
   * trees or output paths). Aborting `signal` kills the process group and
   * resolves with status 'cancelled'.
   */
  run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome>;
  close(): Promise<void>;
}
