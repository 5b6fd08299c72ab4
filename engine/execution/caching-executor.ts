// Writes successful results to the action cache: status ok, exit code 0, a
// result the executor calls cacheable, and an action that is not do_not_cache.
// A failed write only costs the next build a cache miss; the caller still gets
// its result.
import { formatDigest } from '../digest';
import type { ActionCacheStore } from '../store/action-cache-store';
import { ExecutorDecorator, type Executor, type ExecutionHooks, type ExecutionOutcome, type PreparedAction } from './executor';

export class CachingExecutor extends ExecutorDecorator {
  constructor(
    inner: Executor,
    private readonly actionCache: Pick<ActionCacheStore, 'put'>,
    private readonly log: (line: string) => void = () => {},
  ) {
    super(inner);
  }

  override async run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome> {
    const outcome = await this.inner.run(action, signal, hooks);
    if (outcome.status === 'ok' && outcome.result.exitCode === 0 && outcome.cacheable && !action.action.doNotCache) {
      try {
        await this.actionCache.put(action.instance, action.actionDigest, outcome.result);
      } catch (err) {
        this.log(`kiln: could not write action ${formatDigest(action.actionDigest)} to the action cache: ${(err as Error).message}`);
      }
    }
    return outcome;
  }
}
