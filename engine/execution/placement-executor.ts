// Decides, per action, whether it runs here or on a remote executor (an
// upstream REAPI cluster), by the `placement` policy:
//   local-first  here while a local slot is free and execution is on, else remote;
//   upstream     always remote;
//   local        always here.
// Whatever the policy, a remote that cannot be reached costs the build nothing:
// the action runs here instead. The outcome says where it ran (`ranOn`).
// An action a peer Kiln forwarded here (`forwarded`) always runs here: it is
// never sent on, so actions cannot loop between Kilns; with execution off, or
// every local slot busy (the scheduler's slots include this Kiln's own peers'),
// it is refused UNAVAILABLE, which sends it back to the peer to place elsewhere.
import { unavailable } from '../grpc/status';
import type { ExecutionHooks, ExecutionOutcome, Executor, ExecutorCapacity, PreparedAction } from './executor';

export type PlacementPolicy = 'local-first' | 'upstream' | 'local';

export interface PlacementOptions {
  policy: PlacementPolicy;
  /** Local slots right now (they change with the dashboard's setting). */
  localSlots: () => number;
  /** The execution switch: off sends local-first actions to the remote. */
  localEnabled?: () => boolean;
  /** Tells whether an error from the remote means "could not reach it" (then run locally). */
  isUnreachable: (err: unknown) => boolean;
  log?: (line: string) => void;
}

export class PlacementExecutor implements Executor {
  private localRunning = 0;

  constructor(
    private readonly local: Executor,
    private readonly remote: Executor,
    private readonly opts: PlacementOptions,
  ) {}

  /** The local executor's rules: any action may end up here. */
  validateCommand(command: Parameters<Executor['validateCommand']>[0]): void {
    this.local.validateCommand(command);
  }

  capacity(): ExecutorCapacity {
    const local = this.local.capacity();
    const remote = this.remote.capacity();
    const slots = this.opts.policy === 'local' ? local.slots : (local.slots ?? 0) + (remote.slots ?? 0);
    // Not ready only when nothing can run: the remote being down is a health problem, not a stop.
    return local.ready ? { slots, ready: true } : { slots, ready: remote.ready, reason: remote.ready ? undefined : local.reason };
  }

  async run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome> {
    if (action.forwarded) {
      if (!(this.opts.localEnabled?.() ?? true)) throw unavailable('execution is off on this Kiln; the forwarding Kiln should place the action elsewhere');
      if (this.localRunning >= this.opts.localSlots()) throw unavailable('every slot of this Kiln is busy; the forwarding Kiln should place the action elsewhere');
      return this.runLocally(action, signal, hooks);
    }
    if (this.choose() === 'local') return this.runLocally(action, signal, hooks);
    try {
      const outcome = await this.remote.run(action, signal, hooks);
      // A pool of remotes (peers) says which one ran it; a single upstream does not need to.
      return { ...outcome, ranOn: outcome.ranOn ?? 'upstream' };
    } catch (err) {
      if (signal.aborted || !this.opts.isUnreachable(err)) throw err;
      this.opts.log?.(`kiln: ${(err as Error).message}; running action ${action.id} here instead`);
      return this.runLocally(action, signal, hooks);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.local.close(), this.remote.close()]);
  }

  private choose(): 'local' | 'remote' {
    const { policy } = this.opts;
    if (policy === 'local') return 'local';
    // An unreachable remote is tried no more until it answers again (its probe says so).
    if (!this.remote.capacity().ready) return 'local';
    if (policy === 'upstream') return 'remote';
    const enabled = this.opts.localEnabled?.() ?? true;
    return enabled && this.localRunning < this.opts.localSlots() ? 'local' : 'remote';
  }

  private async runLocally(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome> {
    this.localRunning++;
    try {
      return { ...(await this.local.run(action, signal, hooks)), ranOn: 'local' };
    } finally {
      this.localRunning--;
    }
  }
}
