// An Executor the test drives by hand: every run waits until the test finishes
// it (or its signal aborts, which resolves it 'cancelled' like a killed process).
import type { ActionSignal } from '../../engine/common/farm-modes';
import type { ExecutionHooks, ExecutionOutcome, Executor, ExecutorCapacity, PreparedAction } from '../../engine/execution/executor';
import { validateCommand } from '../../engine/worker/outputs';
import { reapi } from '../../engine/proto';

export interface FakeRun {
  action: PreparedAction;
  signal: AbortSignal;
  hooks?: ExecutionHooks;
  finish(outcome?: Partial<ExecutionOutcome> & { exitCode?: number }): void;
  fail(err: unknown): void;
  done: Promise<void>;
}

export class FakeExecutor implements Executor {
  readonly runs: FakeRun[] = [];
  private waiters: (() => void)[] = [];
  /** Signals delivered to running actions, in order. */
  readonly signals: { id: string; signal: ActionSignal }[] = [];
  private readonly live = new Set<string>();
  /** When set, runs finish at once with this exit code instead of waiting. */
  autoFinishExitCode?: number;

  /** The same checks as the LocalExecutor's, so services behave as they would in the engine. */
  validateCommand(command: reapi.Command): void {
    validateCommand(command);
  }

  capacity(): ExecutorCapacity {
    return { ready: true };
  }

  signal(id: string, signal: ActionSignal): boolean {
    if (!this.live.has(id)) return false;
    this.signals.push({ id, signal });
    return true;
  }

  run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome> {
    return new Promise<ExecutionOutcome>((resolve, reject) => {
      let settle!: () => void;
      const done = new Promise<void>((r) => (settle = r));
      const run: FakeRun = {
        action,
        signal,
        hooks,
        done,
        finish: (o = {}) => {
          this.live.delete(action.id);
          resolve(outcome(o));
          settle();
        },
        fail: (err) => {
          this.live.delete(action.id);
          reject(err);
          settle();
        },
      };
      signal.addEventListener('abort', () => run.finish({ status: 'cancelled', exitCode: 137 }), { once: true });
      this.runs.push(run);
      this.live.add(action.id);
      hooks?.onStage?.('fetching-inputs', 0);
      hooks?.onStage?.('running', 0);
      for (const w of this.waiters.splice(0)) w();
      if (this.autoFinishExitCode !== undefined) run.finish({ exitCode: this.autoFinishExitCode });
    });
  }

  /** Resolves once `n` runs have started. */
  async started(n: number): Promise<FakeRun[]> {
    while (this.runs.length < n) await new Promise<void>((r) => this.waiters.push(r));
    return this.runs.slice(0, n);
  }

  async close(): Promise<void> {}
}

function outcome(o: Partial<ExecutionOutcome> & { exitCode?: number }): ExecutionOutcome {
  const t = 1_700_000_000_000;
  return {
    result: o.result ?? reapi.ActionResult.create({ exitCode: o.exitCode ?? 0 }),
    status: o.status ?? 'ok',
    timings: o.timings ?? {
      workerStart: t,
      inputFetchStart: t,
      inputFetchCompleted: t,
      executionStart: t,
      executionCompleted: t,
      outputUploadStart: t,
      outputUploadCompleted: t,
      workerCompleted: t,
    },
    inputFiles: 0,
    inputBytes: 0,
    outputs: o.outputs ?? [],
    cacheable: o.cacheable ?? true,
    notCacheableReason: o.notCacheableReason,
  };
}

/** Lets pending promise callbacks run. */
export const flush = () => new Promise<void>((r) => setImmediate(r));
