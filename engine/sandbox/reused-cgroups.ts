// A CgroupLimiter decorator that keeps finished runs' cgroups for later runs
// with the same limits, instead of removing each one and making the next: the
// mkdirs, limit writes and rmdirs per action cost the engine's main thread and
// the kernel more than reading a counter and checking a cgroup is empty. A
// cgroup goes back to the pool only once everything in it is dead, and with
// its OOM counter read anew, so no run inherits another's processes or OOM kill.
import { sameLimits, type ActionCgroup, type ActionLimits, type CgroupLimiter } from './cgroups';

/** Cgroups kept waiting beyond this many are removed: a burst of concurrent runs does not leave a crowd behind. */
const MAX_IDLE = 8;

export class ReusedCgroups implements CgroupLimiter {
  readonly name: string;
  readonly enforces: CgroupLimiter['enforces'];
  readonly parentDirs?: readonly string[];
  private readonly idle: { limits: ActionLimits; cgroup: ActionCgroup }[] = [];
  private readonly returning = new Set<Promise<void>>();
  private made = 0;
  private closed = false;

  constructor(
    private readonly inner: CgroupLimiter,
    private readonly maxIdle = MAX_IDLE,
  ) {
    this.name = inner.name;
    this.enforces = inner.enforces;
    this.parentDirs = inner.parentDirs;
  }

  /** Cgroups waiting for a run. */
  get idleCount(): number {
    return this.idle.length;
  }

  /**
   * A pooled cgroup serves many runs, so it is named for the pool (`pooled-N`), not
   * for the run that happened to make it: someone reading the cgroup folders would
   * otherwise find one action's name on another's processes.
   */
  async create(_id: string, limits: ActionLimits): Promise<ActionCgroup> {
    const i = this.idle.findIndex((e) => sameLimits(e.limits, limits));
    if (i >= 0) return this.lend(this.idle.splice(i, 1)[0].cgroup, limits);
    return this.lend(await this.inner.create(`pooled-${++this.made}`, limits), limits);
  }

  private lend(cgroup: ActionCgroup, limits: ActionLimits): ActionCgroup {
    const finishForReuse = cgroup.finishForReuse;
    if (!finishForReuse) return cgroup;
    return {
      procsFiles: cgroup.procsFiles,
      finish: async () => {
        if (this.closed) return cgroup.finish();
        const { oomKilled, reusable } = await finishForReuse.call(cgroup);
        const back = reusable.then(
          (next) => (next ? this.giveBack(next, limits) : undefined),
          () => undefined,
        );
        this.returning.add(back);
        void back.finally(() => this.returning.delete(back));
        // Settles once the cgroup is back in the pool (or removed): callers that wait for removals before close() wait for this.
        return { oomKilled, removed: back };
      },
    };
  }

  private async giveBack(cgroup: ActionCgroup, limits: ActionLimits): Promise<void> {
    if (!this.closed && this.idle.length < this.maxIdle) {
      this.idle.push({ limits, cgroup });
      return;
    }
    await remove(cgroup);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.returning]);
    await Promise.all(this.idle.splice(0).map((e) => remove(e.cgroup)));
    await this.inner.close();
  }
}

async function remove(cgroup: ActionCgroup): Promise<void> {
  const { removed } = await cgroup.finish();
  await removed?.catch(() => {});
}
