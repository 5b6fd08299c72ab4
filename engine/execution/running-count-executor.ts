// Counts the runs in progress on the executor it wraps: the Workers view shows
// how many of our actions run on the upstream, and the pool how much room is left.
import type { ExecutionHooks, ExecutionOutcome, PreparedAction } from './executor';
import { ExecutorDecorator } from './executor';

export class RunningCountExecutor extends ExecutorDecorator {
  private count = 0;

  get running(): number {
    return this.count;
  }

  override async run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome> {
    this.count++;
    try {
      return await this.inner.run(action, signal, hooks);
    } finally {
      this.count--;
    }
  }
}
