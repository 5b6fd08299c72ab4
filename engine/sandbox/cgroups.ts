// Per-action resource limits through cgroups: one cgroup per run, made before
// the action starts (the action joins it before it execs anything, so none of
// its children can be born outside it), and torn down after it ends, killing
// whatever is still in it. The kernel's OOM killer then acts inside the
// action's cgroup only: the engine is never the process it picks.
import { existsSync, readFileSync } from 'node:fs';
import { CgroupV1 } from './cgroup-v1';
import { CgroupV2 } from './cgroup-v2';

export interface ActionLimits {
  memoryBytes?: number;
  /** CPU time as a number of cores (1.5 = one and a half). */
  cpus?: number;
  /** Processes and threads at once. */
  pids?: number;
}

export interface ActionCgroup {
  /** Files the action's first process writes its pid into to join (cgroup.procs, one per v1 hierarchy). */
  procsFiles: string[];
  /**
   * Kills what is left and says whether the kernel killed something for
   * memory; removing the cgroup (which waits for the dying to leave) goes on
   * in `removed`, off the action's critical path.
   */
  finish(): Promise<{ oomKilled: boolean; removed?: Promise<void> }>;
  /**
   * Instead of finish(), for a cgroup that may serve another run with the same
   * limits: kills what is left and says whether the kernel killed something for
   * memory in this run; `reusable` is the same cgroup ready for the next run
   * (its counters read anew) once it is empty, or undefined when it would not
   * empty (it is then removed). Optional: a limiter may always remove.
   */
  finishForReuse?(): Promise<{ oomKilled: boolean; reusable: Promise<ActionCgroup | undefined> }>;
}

export interface CgroupLimiter {
  /** "cgroup v1", "cgroup v2". */
  readonly name: string;
  /** Which limits it can enforce. */
  readonly enforces: { memory: boolean; cpus: boolean; pids: boolean };
  create(id: string, limits: ActionLimits): Promise<ActionCgroup>;
  /**
   * The folders each run's cgroup is made in (one per hierarchy), when they are
   * fixed: a slot's sandbox (slot-sandboxes.ts) is given them once. Optional.
   */
  readonly parentDirs?: readonly string[];
  /** Removes what open() made, once no run is left. */
  close(): void | Promise<void>;
}

export function sameLimits(a: ActionLimits, b: ActionLimits): boolean {
  return a.memoryBytes === b.memoryBytes && a.cpus === b.cpus && a.pids === b.pids;
}

export type CgroupDetection = { limiter: CgroupLimiter } | { limiter?: undefined; reason: string };

/** Finds the cgroup hierarchy this host gives (v2 unified first, then v1 controllers) and checks it is writable. */
export function detectCgroups(root = '/sys/fs/cgroup', selfCgroup = readSelfCgroup()): CgroupDetection {
  if (existsSync(`${root}/cgroup.controllers`)) return CgroupV2.open(root, selfCgroup);
  if (existsSync(`${root}/memory`) || existsSync(`${root}/pids`)) return CgroupV1.open(root, selfCgroup);
  return { reason: `no cgroup file system at ${root}` };
}

/** /proc/self/cgroup as controller list → path ("" is the v2 unified line). */
export function readSelfCgroup(): Map<string, string> {
  const out = new Map<string, string>();
  let text = '';
  try {
    text = readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    for (const controller of m[1].split(',')) out.set(controller, m[2]);
  }
  return out;
}

/** A cgroup directory name from a run id (ids are UUIDs, but never trust a name that becomes a path). */
export function cgroupName(id: string): string {
  return `run-${id.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100)}`;
}

let instances = 0;

/** A name for one limiter's parent cgroup: unique per engine process and per limiter in it. */
export function instanceName(): string {
  return `${process.pid}-${++instances}`;
}
