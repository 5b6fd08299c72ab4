// cgroup v1 (what this project's CI machine has): one hierarchy per controller.
// Each run gets a directory in the memory, pids and cpu hierarchies (those that
// exist and are writable), under kiln/{engine pid}-{n}/ below the engine's own
// cgroup, so engines sharing a machine (or a process) never meet; what a killed
// engine left there is removed as the next one opens (stale-cgroups.ts).
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupName, instanceName, type ActionCgroup, type ActionLimits, type CgroupDetection, type CgroupLimiter } from './cgroups';
import { killAndRemove, killUntilEmpty, nextTurn, readCounter } from './cgroup-teardown';
import { removeStaleCgroups } from './stale-cgroups';

const CONTROLLERS = ['memory', 'pids', 'cpu'] as const;
type Controller = (typeof CONTROLLERS)[number];

/** The CFS period for CPU quotas (the kernel's default). */
const CPU_PERIOD_US = 100_000;

export class CgroupV1 implements CgroupLimiter {
  readonly name = 'cgroup v1';
  readonly enforces: CgroupLimiter['enforces'];
  /** Whether memory.memsw.* exists here (swap accounting on); found at the first action. */
  private swapAccounting = true;

  readonly parentDirs: readonly string[];

  private constructor(private readonly parents: Partial<Record<Controller, string>>) {
    this.enforces = { memory: !!parents.memory, cpus: !!parents.cpu, pids: !!parents.pids };
    this.parentDirs = Object.values(parents);
  }

  static open(root: string, self: Map<string, string>): CgroupDetection {
    const parents: Partial<Record<Controller, string>> = {};
    const problems: string[] = [];
    const name = instanceName();
    for (const controller of CONTROLLERS) {
      const mount = join(root, controller);
      if (!existsSync(join(mount, 'cgroup.procs'))) continue;
      // Below our own cgroup when the mount shows it (a container may show only its own subtree as the root).
      const own = join(mount, self.get(controller) ?? '/');
      const kilnDir = join(existsSync(own) ? own : mount, 'kiln');
      const parent = join(kilnDir, name);
      try {
        removeStaleCgroups(kilnDir, /^(\d+)-\d+$/, name);
        mkdirSync(parent, { recursive: true });
        parents[controller] = parent;
      } catch (err) {
        problems.push(`${controller}: ${(err as Error).message}`);
      }
    }
    if (!parents.memory && !parents.pids) {
      return { reason: `cgroup v1 is not writable for Kiln (${problems.join('; ') || 'no memory or pids hierarchy'})` };
    }
    return { limiter: new CgroupV1(parents) };
  }

  // Synchronous file calls (see cgroup-teardown.ts): a cgroup's mkdir and limit writes
  // are the kernel's, and through fs/promises they cost the main thread several times
  // what the calls do.
  async create(id: string, limits: ActionLimits): Promise<ActionCgroup> {
    const dirs: Partial<Record<Controller, string>> = {};
    try {
      for (const controller of CONTROLLERS) {
        const parent = this.parents[controller];
        // Without a CPU limit a cpu cgroup would only cost a mkdir, a join and an rmdir per action.
        if (!parent || (controller === 'cpu' && !limits.cpus)) continue;
        const dir = join(parent, cgroupName(id));
        mkdirSync(dir);
        dirs[controller] = dir;
      }
      if (dirs.memory && limits.memoryBytes) {
        writeFileSync(join(dirs.memory, 'memory.limit_in_bytes'), String(limits.memoryBytes));
        // With swap the limit would only push the action into it; absent without swap accounting (then not tried again).
        if (this.swapAccounting) {
          try {
            writeFileSync(join(dirs.memory, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.swapAccounting = false;
          }
        }
      }
      if (dirs.pids && limits.pids) writeFileSync(join(dirs.pids, 'pids.max'), String(limits.pids));
      if (dirs.cpu && limits.cpus) {
        writeFileSync(join(dirs.cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
        writeFileSync(join(dirs.cpu, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(limits.cpus * CPU_PERIOD_US))));
      }
    } catch (err) {
      await Promise.all(Object.values(dirs).map((d) => killAndRemove(d).catch(() => {})));
      throw err;
    }
    // In CONTROLLERS order.
    const ordered = CONTROLLERS.flatMap((c) => (dirs[c] ? [dirs[c]] : []));
    return v1Cgroup(ordered, dirs.memory, 0);
  }

  /** Removes this engine's (empty) parent folders, once every run's `removed` has settled. */
  close(): void {
    for (const parent of Object.values(this.parents)) {
      try {
        rmdirSync(parent);
      } catch {
        // A run still being torn down, or already gone.
      }
    }
  }
}

/** One run's view of its cgroups: `oomBefore` is the memory cgroup's OOM-kill count when the run took it. */
function v1Cgroup(ordered: string[], memoryDir: string | undefined, oomBefore: number): ActionCgroup {
  const oomKills = () => (memoryDir ? readCounter(join(memoryDir, 'memory.oom_control'), 'oom_kill') : 0);
  return {
    procsFiles: ordered.map((d) => join(d, 'cgroup.procs')),
    finish: async () => {
      const oomKilled = oomKills() > oomBefore;
      // The action's PID namespace is gone already, and everything in it with it; the removal kills whatever
      // is left, on the next turn, so the action's result goes out first.
      const removed = nextTurn().then(() => Promise.all(ordered.map((d) => killAndRemove(d)))).then(() => {});
      return { oomKilled, removed };
    },
    finishForReuse: async () => {
      const count = oomKills();
      const reusable = nextTurn().then(async () => {
        if (await killUntilEmpty(ordered)) return v1Cgroup(ordered, memoryDir, count);
        await Promise.all(ordered.map((d) => killAndRemove(d).catch(() => {})));
        return undefined;
      });
      return { oomKilled: count > oomBefore, reusable };
    },
  };
}
