// A cgroup v1 cpuacct group around one server and everything it starts, so
// the bench can count the CPU of every process an action runs. The launcher's
// reaped-children figure misses what bwrap does not hand back to it: without
// --as-pid-1 bwrap's init (and the action under it) is reparented away when
// bwrap exits, so its CPU was never counted. Root on a cgroup v1 host only;
// elsewhere the bench falls back to the reaped figure and says so.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CPUACCT = '/sys/fs/cgroup/cpuacct';

export class CpuAccount {
  private constructor(private readonly dir: string) {}

  /** Moves the processes (a server and its launcher) into a fresh cpuacct group; undefined where that cannot be done. */
  static around(pids: number[], name: string): CpuAccount | undefined {
    if (!existsSync(join(CPUACCT, 'cpuacct.usage'))) return undefined;
    const dir = join(CPUACCT, name);
    try {
      mkdirSync(dir);
      // cgroup.procs moves every thread of each process; what they start later is born inside.
      for (const pid of pids) writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      return new CpuAccount(dir);
    } catch {
      return undefined;
    }
  }

  /** CPU time (user + system) of everything in the group so far, in ms. */
  usageMs(): number {
    return Number(readFileSync(join(this.dir, 'cpuacct.usage'), 'utf8')) / 1e6;
  }

  /** Removes the group once its processes are gone (the kernel refuses while any is left). */
  close(): void {
    try {
      rmdirSync(this.dir);
    } catch {
      // Still busy, or gone: a leftover empty group costs nothing.
    }
  }
}
