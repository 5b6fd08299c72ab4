// The execution seam: the scheduler hands a prepared action to an Executor and
// gets an outcome back. An Executor turns a REAPI action into a result and
// knows nothing of processes (that is a Runner's job, runner.ts); a new *place*
// to run (an upstream REAPI cluster, a peer Kiln) is a new Executor, and
// behaviours (result shaping, metadata, caching, orphan reaping) are Executor
// decorators, one file each, composed by engine/executor-factory.ts.
import type { ActionOutputSummary, ExecutionStage } from '../common/action-vocabulary';
import type { ActionSignal } from '../common/farm-modes';
import type { BlobDigest } from '../digest';
import type { reapi } from '../proto';
import type { LogSink } from './log-sink';

export type { LogSink } from './log-sink';

export interface ActionLogs {
  stdout: LogSink;
  stderr: LogSink;
}

/**
 * Whether anybody still waits for an action (an Execute/WaitExecution stream, a
 * GetOperation call). The scheduler keeps it; the orphan reaper reads it.
 */
export interface Attention {
  /** Since when every caller has been gone; undefined while somebody watches. */
  unwatchedSince(): number | undefined;
  /** Called whenever that may have changed; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}

export interface PreparedAction {
  /** Operation id; unique per execution. */
  id: string;
  instance: string;
  actionDigest: BlobDigest;
  action: reapi.Action;
  /** With Action.platform already applied, and validated by validateCommand. */
  command: reapi.Command;
  /** Already clamped by the scheduler to the configured default/maximum. */
  timeoutMs: number;
  /** When the action was queued (ExecutedActionMetadata.queued_timestamp). */
  queuedAt?: number;
  /** Where stdout/stderr go while the action runs (live readers follow them). */
  logs: ActionLogs;
  /** Lets decorators see whether anybody still waits for the result. */
  attention?: Attention;
  /** The Bazel invocation that asked for it (RequestMetadata.tool_invocation_id), when known. */
  invocationId?: string;
  /** A peer Kiln forwarded it here: it must run on this machine, not be forwarded again. */
  forwarded?: boolean;
}

export type { ExecutionStage };

export interface ExecutionHooks {
  /** Called as the action moves through its stages (for metadata updates and the dashboard). */
  onStage?(stage: ExecutionStage, at: number): void;
  /** Called once the input tree is read, before staging: the running action's detail shows its inputs from then on. */
  onInputs?(inputFiles: number, inputBytes: number): void;
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
  /** Outputs uploaded, stdout/stderr digests set; decorators add metadata and shape the output fields. */
  result: reapi.ActionResult;
  /** 'ok' includes non-zero exits. */
  status: 'ok' | 'timeout' | 'cancelled';
  timings: ExecutionTimings;
  /** Which worker ran it (ExecutedActionMetadata.worker). */
  worker?: string;
  /** Where it ran: 'local', 'upstream' or 'peer:NAME' (the placement executor fills it in; the dashboard shows it). */
  ranOn?: string;
  inputFiles: number;
  inputBytes: number;
  outputs: ActionOutputSummary[];
  /**
   * False when the result must never be cached even if it succeeded (the action
   * wrote through a hard-linked input, …); `notCacheableReason` says why.
   */
  cacheable: boolean;
  notCacheableReason?: string;
}

export interface ExecutorCapacity {
  /** Actions it can run at once, when it knows (a remote executor may not). */
  slots?: number;
  ready: boolean;
  /** Why it is not ready, in words a person can act on. */
  reason?: string;
}

export interface Executor {
  /**
   * Rejects (INVALID_ARGUMENT) a Command this executor cannot run safely: the
   * Execution service asks once, before the action is queued.
   */
  validateCommand(command: reapi.Command): void;
  /**
   * Stages inputs, runs the command, collects and uploads outputs.
   * Rejects with a GrpcError for problems of the request (FAILED_PRECONDITION
   * with PreconditionFailure for missing inputs, INVALID_ARGUMENT for hostile
   * trees or output paths). Aborting `signal` stops the run and resolves with
   * status 'cancelled'.
   */
  run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome>;
  capacity(): ExecutorCapacity;
  /** Signals the running action with this id (its Runner's processes); false when it has none running. Optional. */
  signal?(id: string, signal: ActionSignal): boolean;
  close(): Promise<void>;
}

/** The base of every decorator: forwards everything to the executor it wraps. */
export abstract class ExecutorDecorator implements Executor {
  constructor(protected readonly inner: Executor) {}

  validateCommand(command: reapi.Command): void {
    this.inner.validateCommand(command);
  }

  run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome> {
    return this.inner.run(action, signal, hooks);
  }

  capacity(): ExecutorCapacity {
    return this.inner.capacity();
  }

  signal(id: string, signal: ActionSignal): boolean {
    return this.inner.signal?.(id, signal) ?? false;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
