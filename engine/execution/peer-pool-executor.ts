// A pool of remote executors (peer Kilns, and optionally an upstream behind
// them) seen as one Executor. Per action it picks the target with room — the
// one that ran this invocation's last action first, since it likely holds the
// inputs already, else the one with the most room — and when that target
// fails (gone mid-action, refusing, queue full) it tries the next one. When no
// target is left it rejects with NoRemoteTargetError, which the placement
// executor answers by running the action here: a peer never fails a build
// that this machine could have done.
import type { ExecutionHooks, ExecutionOutcome, Executor, ExecutorCapacity, PreparedAction } from './executor';

export interface PoolTarget {
  /** How the dashboard names where an action ran: "peer:desk-2", "upstream". */
  readonly name: string;
  readonly executor: Executor;
  /** Actions it takes more right now (its free slots, less for a busy person; 0 when down, paused or off). */
  room(): number;
}

export interface PeerPoolOptions {
  /** The targets as they are now (mDNS may add and remove peers). */
  targets: () => readonly PoolTarget[];
  /** Tried only when no target has room (the upstream cluster behind the peers). */
  overflow?: PoolTarget;
  /** Whether an error from a target means "try another" (default: every error does; local is the last word). */
  retryable?: (err: unknown) => boolean;
  log?: (line: string) => void;
}

/** No target took the action (none had room, or every one failed): not a verdict on the action. */
export class NoRemoteTargetError extends Error {}

/** Invocations remembered for affinity; the oldest is forgotten beyond this. */
const AFFINITY_LIMIT = 1000;

export class PeerPoolExecutor implements Executor {
  /** Invocation id → the target that last ran one of its actions. */
  private readonly lastTarget = new Map<string, string>();

  constructor(private readonly opts: PeerPoolOptions) {}

  /** Whatever runs here may fall back to the local executor, whose checks apply (the placement executor asks it). */
  validateCommand(): void {}

  capacity(): ExecutorCapacity {
    const targets = this.all();
    const slots = targets.reduce((sum, t) => sum + Math.max(0, t.room()), 0);
    if (slots > 0) return { slots, ready: true };
    return { slots: 0, ready: false, reason: targets.length ? 'no peer has a free slot' : 'no peer is known yet' };
  }

  async run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome> {
    const tried = new Set<string>();
    let lastError: unknown;
    for (;;) {
      const target = this.pick(action.invocationId, tried);
      if (!target) {
        const why = lastError ? `the last one failed: ${(lastError as Error).message}` : 'none has a free slot';
        throw new NoRemoteTargetError(tried.size ? `no peer could run action ${action.id} (${why})` : `no peer can take action ${action.id}: ${why}`);
      }
      tried.add(target.name);
      try {
        const outcome = await target.executor.run(action, signal, hooks);
        this.remember(action.invocationId, target.name);
        return { ...outcome, ranOn: target.name };
      } catch (err) {
        if (signal.aborted || !(this.opts.retryable?.(err) ?? true)) throw err;
        lastError = err;
        this.opts.log?.(`kiln: ${target.name} did not run action ${action.id}: ${(err as Error).message}; trying elsewhere`);
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((t) => t.executor.close()));
  }

  private all(): PoolTarget[] {
    const { overflow } = this.opts;
    return overflow ? [...this.opts.targets(), overflow] : [...this.opts.targets()];
  }

  /**
   * The invocation's last target when it has room, else the target with the most
   * room, else the overflow; undefined when none has any.
   */
  private pick(invocationId: string | undefined, tried: Set<string>): PoolTarget | undefined {
    const open = this.opts.targets().filter((t) => !tried.has(t.name) && t.room() > 0);
    const preferred = invocationId ? this.lastTarget.get(invocationId) : undefined;
    const sticky = open.find((t) => t.name === preferred);
    if (sticky) return sticky;
    let best: PoolTarget | undefined;
    for (const t of open) if (!best || t.room() > best.room()) best = t;
    const { overflow } = this.opts;
    return best ?? (overflow && !tried.has(overflow.name) && overflow.room() > 0 ? overflow : undefined);
  }

  private remember(invocationId: string | undefined, target: string): void {
    if (!invocationId) return;
    this.lastTarget.delete(invocationId);
    this.lastTarget.set(invocationId, target);
    if (this.lastTarget.size > AFFINITY_LIMIT) this.lastTarget.delete(this.lastTarget.keys().next().value!);
  }
}
