// cgroup v2 (the unified hierarchy): runs go in kiln-{engine pid}-{n}/ beside the
// engine's own cgroup (v2 lets only leaves hold processes, so not below it),
// with the memory, pids and cpu controllers enabled down to them. Written for
// hosts that give v2; this project's CI machine has only v1, so it is exercised
// there only as far as detection.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cgroupName, instanceName, type ActionCgroup, type ActionLimits, type CgroupDetection, type CgroupLimiter } from './cgroups';
import { killAndRemove, killListed, killUntilEmpty, nextTurn, readCounter } from './cgroup-teardown';
import { removeStaleCgroups } from './stale-cgroups';

const CPU_PERIOD_US = 100_000;

export class CgroupV2 implements CgroupLimiter {
  readonly name = 'cgroup v2';

  private constructor(
    private readonly parent: string,
    readonly enforces: CgroupLimiter['enforces'],
  ) {}

  static open(root: string, self: Map<string, string>): CgroupDetection {
    const own = self.get('') ?? '/';
    const base = join(root, own === '/' ? '/' : dirname(own));
    const name = `kiln-${instanceName()}`;
    const parent = join(base, name);
    try {
      const available = readFileSync(join(base, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
      const wanted = ['memory', 'pids', 'cpu'].filter((c) => available.includes(c));
      if (!wanted.length) return { reason: `cgroup v2 at ${base} delegates none of memory, pids, cpu to Kiln` };
      writeFileSync(join(base, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
      removeStaleCgroups(base, /^kiln-(\d+)-\d+$/, name);
      mkdirSync(parent, { recursive: true });
      writeFileSync(join(parent, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
      return { limiter: new CgroupV2(parent, { memory: wanted.includes('memory'), cpus: wanted.includes('cpu'), pids: wanted.includes('pids') }) };
    } catch (err) {
      return { reason: `cgroup v2 at ${base} is not writable for Kiln (${(err as Error).message}); run Kiln in a delegated cgroup (systemd Delegate=yes)` };
    }
  }

  // Synchronous file calls, as in cgroup-v1.ts: the kernel answers them without a disk.
  async create(id: string, limits: ActionLimits): Promise<ActionCgroup> {
    const dir = join(this.parent, cgroupName(id));
    mkdirSync(dir);
    try {
      if (limits.memoryBytes && this.enforces.memory) {
        writeFileSync(join(dir, 'memory.max'), String(limits.memoryBytes));
        try {
          writeFileSync(join(dir, 'memory.swap.max'), '0');
        } catch {
          // No swap controller: nothing to keep the action out of.
        }
      }
      if (limits.pids && this.enforces.pids) writeFileSync(join(dir, 'pids.max'), String(limits.pids));
      if (limits.cpus && this.enforces.cpus) writeFileSync(join(dir, 'cpu.max'), `${Math.max(1000, Math.round(limits.cpus * CPU_PERIOD_US))} ${CPU_PERIOD_US}`);
    } catch (err) {
      await killAndRemove(dir).catch(() => {});
      throw err;
    }
    return v2Cgroup(dir, 0);
  }

  close(): void {
    try {
      rmdirSync(this.parent);
    } catch {
      // Still busy, or gone.
    }
  }
}

/** One run's view of its cgroup: `oomBefore` is its OOM-kill count when the run took it. */
function v2Cgroup(dir: string, oomBefore: number): ActionCgroup {
  const oomKills = () => readCounter(join(dir, 'memory.events'), 'oom_kill');
  return {
    procsFiles: [join(dir, 'cgroup.procs')],
    finish: async () => {
      const oomKilled = oomKills() > oomBefore;
      killTree(dir);
      return { oomKilled, removed: nextTurn().then(() => killAndRemove(dir)) };
    },
    finishForReuse: async () => {
      const count = oomKills();
      killTree(dir);
      const reusable = nextTurn().then(async () => {
        if (await killUntilEmpty([dir])) return v2Cgroup(dir, count);
        await killAndRemove(dir).catch(() => {});
        return undefined;
      });
      return { oomKilled: count > oomBefore, reusable };
    },
  };
}

/** cgroup.kill (Linux 5.14+) kills the whole tree at once, even processes forking as it goes. */
function killTree(dir: string): void {
  if (existsSync(join(dir, 'cgroup.kill'))) {
    try {
      writeFileSync(join(dir, 'cgroup.kill'), '1');
    } catch {
      // Gone already; the removal finds out.
    }
  } else killListed(dir);
}
