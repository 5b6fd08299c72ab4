// Cancels actions nobody waits for. Bazel seldom calls CancelOperation, so a
// run whose every caller has been gone (no Execute/WaitExecution stream, no
// GetOperation) for `timeoutMs` is stopped and answered CANCELLED. The
// scheduler says who is watching (PreparedAction.attention); this decorator
// owns the timers. An action orphaned while still queued is cancelled when it
// reaches a slot, before it runs.
import { systemClock, type Clock } from '../clock';
import { formatDigest } from '../digest';
import { GrpcError, Status } from '../grpc/status';
import { ExecutorDecorator, type Executor, type ExecutionHooks, type ExecutionOutcome, type PreparedAction } from './executor';

export interface OrphanReapingOptions {
  /** 0 or less: never cancel. */
  timeoutMs: number;
  clock?: Clock;
  log?: (line: string) => void;
}

export class OrphanReapingExecutor extends ExecutorDecorator {
  private readonly clock: Clock;

  constructor(
    inner: Executor,
    private readonly opts: OrphanReapingOptions,
  ) {
    super(inner);
    this.clock = opts.clock ?? systemClock;
  }

  override async run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome> {
    const { attention } = action;
    const ms = this.opts.timeoutMs;
    if (!attention || !(ms > 0) || !Number.isFinite(ms)) return this.inner.run(action, signal, hooks);

    const idle = formatIdle(ms);
    const why =
      `the action was cancelled because nobody was waiting for it for ${idle}: every Execute/WaitExecution caller had gone away ` +
      `(execute it again; orphanTimeoutMs in the Kiln configuration sets how long unwatched actions are kept)`;
    const stop = new AbortController();
    const forward = () => stop.abort();
    signal.addEventListener('abort', forward, { once: true });
    if (signal.aborted) stop.abort();
    let timer: { cancel(): void } | undefined;
    let reaped = false;
    let state: 'queued' | 'running' = 'queued';
    const check = () => {
      timer?.cancel();
      timer = undefined;
      const since = attention.unwatchedSince();
      if (since === undefined || reaped) return;
      const left = since + ms - this.clock.now();
      if (left > 0) {
        timer = this.clock.setTimeout(check, left);
        return;
      }
      reaped = true;
      this.opts.log?.(`kiln: cancelled ${state} action ${action.id} (${formatDigest(action.actionDigest)}): nobody was waiting for it for ${idle}`);
      stop.abort();
    };
    check();
    if (reaped) throw new GrpcError(Status.CANCELLED, why);
    state = 'running';
    const unsubscribe = attention.onChange(check);
    try {
      const outcome = await this.inner.run(action, stop.signal, hooks);
      if (reaped) throw new GrpcError(Status.CANCELLED, why);
      return outcome;
    } finally {
      unsubscribe();
      timer?.cancel();
      signal.removeEventListener('abort', forward);
    }
  }
}

/** "10 minutes", "1 minute", "90 seconds". */
function formatIdle(ms: number): string {
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (ms % 60_000 === 0) return plural(ms / 60_000, 'minute');
  if (ms % 1000 === 0) return plural(ms / 1000, 'second');
  return plural(ms, 'millisecond');
}
