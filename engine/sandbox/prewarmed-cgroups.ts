// A CgroupLimiter decorator that keeps one cgroup made ahead, with the
// default limits, so the common action (one that asks for no limits of its
// own) does not wait for the mkdirs and limit writes: it takes the spare and
// the next one is made in the background. An action with limits of its own,
// or one that arrives before the spare is ready, gets a fresh cgroup as before.
import { nextTurn } from './cgroup-teardown';
import { sameLimits, type ActionCgroup, type ActionLimits, type CgroupLimiter } from './cgroups';

export class PrewarmedCgroups implements CgroupLimiter {
  readonly name: string;
  readonly enforces: CgroupLimiter['enforces'];
  readonly parentDirs?: readonly string[];
  private spare?: Promise<ActionCgroup | undefined>;
  private made = 0;
  private closed = false;

  constructor(
    private readonly inner: CgroupLimiter,
    /** The limits the spare is made with: the sandbox's defaults. */
    private readonly defaults: ActionLimits,
  ) {
    this.name = inner.name;
    this.enforces = inner.enforces;
    this.parentDirs = inner.parentDirs;
  }

  async create(id: string, limits: ActionLimits): Promise<ActionCgroup> {
    if (!sameLimits(limits, this.defaults)) return this.inner.create(id, limits);
    // Taken before any await, so two actions never share one; the first such action makes its own.
    const spare = this.spare;
    this.makeSpare();
    return (await spare) ?? this.inner.create(id, limits);
  }

  private makeSpare(): void {
    if (this.closed) return;
    // A failure here is not the next action's: it then makes its own cgroup, and says why if it fails too.
    // Made on the next turn: the limiters make cgroups with synchronous calls, which
    // would otherwise run on the action's own path before it starts.
    const name = `spare-${++this.made}`;
    this.spare = nextTurn()
      .then(() => (this.closed ? undefined : this.inner.create(name, this.defaults)))
      .catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    const spare = this.spare;
    this.spare = undefined;
    // The unused spare goes before the parent folders do.
    const teardown = await (await spare)?.finish();
    await teardown?.removed?.catch(() => {});
    await this.inner.close();
  }
}
