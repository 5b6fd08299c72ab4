// Turns what an Executor returned (or threw) into the ExecuteResponse callers
// get and the outcome the dashboard shows. Writing the action cache is the
// CachingExecutor's job (engine/execution/caching-executor.ts).
// Problems of the run go in ExecuteResponse.status, never in Operation.error.
import { status as Status } from '@grpc/grpc-js';
import type { ActionRole } from '../common/action-role';
import type { ActionOutcome, ActionTiming } from '../common/action-vocabulary';
import { toGrpcError } from '../grpc/status';
import { reapi, rpc } from '../proto';
import type { ExecutionOutcome } from '../execution/executor';

export interface RunVerdict {
  response: reapi.ExecuteResponse;
  outcome: ActionOutcome;
  exitCode?: number;
  message?: string;
}

/**
 * What to change when an action runs out of time. The gRPC deadline
 * (--remote_timeout) has nothing to do with it: a test's time comes from
 * --test_timeout or its size, any other action's from its `timeout` exec property.
 */
export function timeoutMessage(timeoutMs: number, role?: ActionRole): string {
  const took = timeoutMs % 1000 === 0 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`;
  if (role === 'test') {
    return `test timed out after ${took}; give it more time with --test_timeout=SECONDS or a larger size (size = "large") on the test rule`;
  }
  return `action timed out after ${took}; give it more time with its "timeout" exec property (exec_properties = {"timeout": "SECONDS"})`;
}

export function verdictFromOutcome(run: ExecutionOutcome, timeoutMs: number, role?: ActionRole): RunVerdict {
  const result = run.result;
  const exitCode = result.exitCode;
  const respond = (code: Status, message: string) =>
    reapi.ExecuteResponse.create({ result, status: rpc.Status.create({ code, message }), message });

  switch (run.status) {
    case 'timeout': {
      const message = timeoutMessage(timeoutMs, role);
      return { response: respond(Status.DEADLINE_EXCEEDED, message), outcome: 'timeout', exitCode, message };
    }
    case 'cancelled': {
      const message = 'action was cancelled before it finished';
      return { response: respond(Status.CANCELLED, message), outcome: 'cancelled', exitCode, message };
    }
    case 'ok': {
      const notCached = !run.cacheable ? `; not cached: ${run.notCacheableReason ?? 'the executor marked the result uncacheable'}` : '';
      const message = (exitCode === 0 ? '' : `action exited with code ${exitCode}`) + notCached;
      return {
        response: respond(Status.OK, message),
        outcome: exitCode === 0 ? 'success' : 'failure',
        exitCode,
        message: message || undefined,
      };
    }
  }
}

/** The executor refused or failed: its GrpcError (details kept), anything else INTERNAL. */
export function verdictFromError(err: unknown): RunVerdict {
  const st = toGrpcError(err, 'internal error running the action').toStatus();
  // CANCELLED from an executor (the orphan reaper) is a cancellation, not a failure.
  const outcome = st.code === Status.CANCELLED ? 'cancelled' : 'error';
  return { response: reapi.ExecuteResponse.create({ status: st, message: st.message }), outcome, message: st.message };
}

/** A queued action that never ran because it was cancelled or the engine stopped. */
export function cancelledVerdict(why: string): RunVerdict {
  return {
    response: reapi.ExecuteResponse.create({ status: rpc.Status.create({ code: Status.CANCELLED, message: why }), message: why }),
    outcome: 'cancelled',
    message: why,
  };
}

export function timingBreakdown(queuedAt: number, startedAt: number | undefined, finishedAt: number, run?: ExecutionOutcome): ActionTiming {
  const t = run?.timings;
  const span = (a?: number, b?: number) => (a !== undefined && b !== undefined ? Math.max(0, b - a) : 0);
  return {
    queuedMs: span(queuedAt, startedAt ?? finishedAt),
    inputFetchMs: span(t?.inputFetchStart, t?.inputFetchCompleted),
    executionMs: span(t?.executionStart, t?.executionCompleted),
    outputUploadMs: span(t?.outputUploadStart, t?.outputUploadCompleted),
    totalMs: span(queuedAt, finishedAt),
  };
}
