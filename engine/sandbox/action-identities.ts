// Which uid and gid each action runs as. A fixed user (--action-user NAME) is
// shared by every action; a range (action-uids, the default when Kiln is
// root) gives each running action an identity of its own, so one action
// cannot signal another's processes nor enter its exec root (0700, owned by
// its uid). Numeric ids need no /etc/passwd entry: the kernel only compares
// numbers, and the action's environment is exactly the Command's (no HOME or
// USER looked up for it).
//
// A uid is handed out again only once it is clean: whatever still ran as it
// after its action has been killed (a process that left its group and closed
// its marker would otherwise be there for the next action with that uid), and
// the old exec root's top folder has been handed back to Kiln, so the next
// holder cannot enter it even before it is removed. The check is one look
// through /proc, and one look answers for every uid at once, so released uids
// wait as "dirty" and are checked together: when one of them would be handed
// out, or a moment after the first of them was released. With 256 uids reused
// least recently freed first, that is one look per second or per 256 actions
// instead of one per action.
import { lchownSync } from 'node:fs';
import { killProcessesOf, processesIn } from './uid-processes';

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
  /** Kiln stops: clean up after the actions it ran (what still runs as their identities). */
  close?(): Promise<void>;
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
  /** The uids in `range` that some live process runs as (one look through /proc by default). */
  uidsInUse?: (range: UidRange) => Set<number>;
  /** Released uids are checked this long after the first of them was released, if no hand-out needed them sooner. */
  checkDelayMs?: number;
  /** Kiln's own uid and gid, which the old exec root is handed back to. */
  owner?: ActionIdentity;
  log?: (line: string) => void;
}

/** How long a released uid may wait for its check when nothing needs it: leftovers do not linger, and the look is cheap at this rate. */
export const UID_CHECK_DELAY_MS = 1000;

/**
 * One uid (and the gid of the same number) per running action, from a range;
 * an action waits when all are in use. A released uid is dirty until a check
 * finds nothing running as it (or kills what does); a dirty uid is never
 * handed out.
 */
export class UidPool implements IdentitySource {
  /** Free ids, least recently used first: a uid is reused as late as possible. */
  private readonly free: number[] = [];
  /** Released and not yet checked: free, but not to be handed out before a check. */
  private readonly dirty = new Set<number>();
  private readonly waiting: ((uid: number) => void)[] = [];
  /** The check under way, if any. */
  private checking?: Promise<void>;
  private timer?: NodeJS.Timeout;
  /** How many looks through /proc the pool has made (for tests and measurement). */
  checks = 0;

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
    const id = await this.take();
    let released = false;
    return {
      uid: id,
      gid: id,
      release: async (execRoot) => {
        if (released) return;
        released = true;
        this.handBack(execRoot);
        this.dirty.add(id);
        this.giveBack(id);
      },
    };
  }

  /** Checks the uids released since the last check, so nothing an action left behind outlives this Kiln. */
  async close(): Promise<void> {
    while (this.dirty.size) await this.check();
  }

  /** The least recently freed uid, checked clean first if it is dirty; waits while none is free. */
  private async take(): Promise<number> {
    for (;;) {
      const id = this.free[0];
      if (id === undefined) return new Promise<number>((resolve) => this.waiting.push(resolve));
      if (!this.dirty.has(id)) return this.free.shift()!;
      await this.check();
    }
  }

  /** Checks every dirty uid with one look; at most one check at a time. */
  private check(): Promise<void> {
    this.checking ??= this.checkDirty().finally(() => {
      this.checking = undefined;
      this.serveWaiting();
      // Released while this check ran: they get the next one.
      if (this.dirty.size) this.checkLater();
    });
    return this.checking;
  }

  private async checkDirty(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    // Taken with the look itself: a uid released while the kills below run stays dirty for the next check.
    const uids = [...this.dirty];
    let busy: Set<number>;
    try {
      this.checks++;
      busy = (this.opts.uidsInUse ?? uidsRunning)(this.range);
    } catch (err) {
      // Unknown is not clean: each is checked alone, by killAll's own look.
      this.opts.log?.(`kiln: could not look for processes left as the action uids: ${(err as Error).message}`);
      busy = new Set(uids);
    }
    for (const id of uids) {
      if (busy.has(id)) await this.kill(id);
      this.dirty.delete(id);
    }
  }

  private async kill(id: number): Promise<void> {
    try {
      const killed = await (this.opts.killAll ?? killProcessesOf)({ uid: id, gid: id });
      if (killed) this.opts.log?.(`kiln: ${killed} process(es) of an action outlived it as uid ${id}; killed them before the uid is used again`);
    } catch (err) {
      this.opts.log?.(`kiln: could not check for processes left as uid ${id}: ${(err as Error).message}`);
    }
  }

  /** The old exec root goes back to Kiln at once (one system call), so whoever holds the uid next cannot enter it. */
  private handBack(execRoot: string): void {
    const owner = this.opts.owner ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    try {
      lchownSync(execRoot, owner.uid, owner.gid);
    } catch {
      // Already removed: nothing to hand back.
    }
  }

  private giveBack(id: number): void {
    this.free.push(id);
    if (this.waiting.length) this.serveWaiting();
    else this.checkLater();
  }

  /** A check soon, off any action's path, unless one is due or under way. */
  private checkLater(): void {
    if (this.timer || this.checking) return;
    this.timer = setTimeout(() => void this.check(), this.opts.checkDelayMs ?? UID_CHECK_DELAY_MS);
    this.timer.unref();
  }

  /** Hands freed uids to actions that wait for one, checking them first. */
  private serveWaiting(): void {
    while (this.waiting.length && this.free.length) {
      if (this.dirty.has(this.free[0])) {
        void this.check();
        return;
      }
      this.waiting.shift()!(this.free.shift()!);
    }
  }
}

/** The uids of `range` some live process runs as. */
function uidsRunning(range: UidRange): Set<number> {
  return new Set(process.platform === 'linux' ? processesIn(range).map((p) => p.uid) : []);
}
