// Which uid and gid each action runs as. A fixed user (--action-user NAME) is
// shared by every action; a range (action-uids, the default when Kiln is
// root) gives each running action an identity of its own, so one action
// cannot signal another's processes nor enter its exec root (0700, owned by
// its uid). Numeric ids need no /etc/passwd entry: the kernel only compares
// numbers, and the action's environment is exactly the Command's (no HOME or
// USER looked up for it).
//
// A uid goes back to the pool only once it is clean: whatever still runs as
// it is killed (a process that left its group and closed its marker would
// otherwise be there for the next action with that uid), and the old exec
// root's top folder is handed back to Kiln, so the next holder cannot enter it
// even before it is removed.
import { lchown } from 'node:fs/promises';
import { killProcessesOf } from './uid-processes';

export interface UidRange {
  first: number;
  last: number;
}

export interface ActionIdentity {
  uid: number;
  gid: number;
}

export interface IdentityLease extends ActionIdentity {
  /** The action is over: clean up after it (its exec root's path) and free the identity. Never rejects. */
  release(execRoot: string): Promise<void>;
}

/** Hands out the identity each action runs as. */
export interface IdentitySource {
  acquire(): Promise<IdentityLease>;
}

/** Every action as one user. */
export class FixedIdentity implements IdentitySource {
  constructor(private readonly user: ActionIdentity) {}

  acquire(): Promise<IdentityLease> {
    return Promise.resolve({ uid: this.user.uid, gid: this.user.gid, release: () => Promise.resolve() });
  }
}

export interface UidPoolOptions {
  /** Kills every process running as the uid; returns how many there were (uid-processes.ts by default). */
  killAll?: (id: ActionIdentity) => Promise<number>;
  /** Kiln's own uid and gid, which the old exec root is handed back to. */
  owner?: ActionIdentity;
  log?: (line: string) => void;
}

/** One uid (and the gid of the same number) per running action, from a range; an action waits when all are in use. */
export class UidPool implements IdentitySource {
  /** Free ids, least recently used first: a uid is reused as late as possible. */
  private readonly free: number[] = [];
  private readonly waiting: ((uid: number) => void)[] = [];

  constructor(
    readonly range: UidRange,
    private readonly opts: UidPoolOptions = {},
  ) {
    for (let id = range.first; id <= range.last; id++) this.free.push(id);
  }

  get size(): number {
    return this.range.last - this.range.first + 1;
  }

  async acquire(): Promise<IdentityLease> {
    const id = this.free.shift() ?? (await new Promise<number>((resolve) => this.waiting.push(resolve)));
    let released = false;
    return {
      uid: id,
      gid: id,
      release: async (execRoot) => {
        if (released) return;
        released = true;
        await this.clean(id, execRoot);
        this.giveBack(id);
      },
    };
  }

  private async clean(id: number, execRoot: string): Promise<void> {
    const owner = this.opts.owner ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    try {
      const killed = await (this.opts.killAll ?? killProcessesOf)({ uid: id, gid: id });
      if (killed) this.opts.log?.(`kiln: ${killed} process(es) of an action outlived it as uid ${id}; killed them before the uid is used again`);
    } catch (err) {
      this.opts.log?.(`kiln: could not check for processes left as uid ${id}: ${(err as Error).message}`);
    }
    await lchown(execRoot, owner.uid, owner.gid).catch(() => {
      // Already removed: nothing to hand back.
    });
  }

  private giveBack(id: number): void {
    const next = this.waiting.shift();
    if (next) next(id);
    else this.free.push(id);
  }
}
