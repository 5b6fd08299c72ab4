// What the launcher does differently when it is a slot's agent: it runs inside
// a long-lived bubblewrap sandbox of its own (engine/sandbox/slot-sandboxes.ts),
// as the sandbox's root with a few capabilities, and starts one action at a
// time as that action's uid. Between two actions it makes the slot as new:
// every other process in its PID namespace killed, /tmp and /dev/shm emptied,
// System V IPC the action left removed. Only then does it report the action
// over, so the next action in the slot never meets anything of the last.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Set in the agent's environment by the slot's command line. */
export const SLOT_AGENT_ENV = 'KILN_LAUNCHER_SLOT';

export function isSlotAgent(): boolean {
  return process.env[SLOT_AGENT_ENV] === '1';
}

/** The places an action may write besides its exec root; private to the slot, emptied after each action. */
export const SLOT_SCRATCH = ['/tmp', '/dev/shm'];

/**
 * Joins the action's cgroups (their cgroup.procs, as the sandbox sees them)
 * for the spawn only: the child is born inside them, and the agent goes back
 * to the folder above (the slot's own, unlimited), so an action's memory limit
 * never counts the agent nor lets the kernel pick it.
 */
export function spawnInCgroups<T>(procsFiles: readonly string[], spawnIt: () => T): T {
  const joined: string[] = [];
  try {
    for (const file of procsFiles) {
      writeFileSync(file, '0');
      joined.push(file);
    }
    return spawnIt();
  } finally {
    for (const file of joined) writeFileSync(join(dirname(dirname(file)), 'cgroup.procs'), '0');
  }
}

/**
 * SIGKILL to every process the agent may signal in its namespace (all but
 * itself, the namespace's init and the `spared`: its spawner), until none is
 * left alive: a process that was forking as the first kill came is caught by
 * the next.
 */
export async function killEveryoneElse(spared: readonly number[] = []): Promise<void> {
  for (let round = 0; round < 400; round++) {
    // One look at /proc per round: after most actions nothing is left, and nothing is signalled.
    const alive = othersAlive(spared);
    if (alive.length === 0) return;
    if (spared.length === 0) killOthersNow();
    else for (const pid of alive) killQuietly(pid);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error('processes of the last action are still alive after 2 s of SIGKILL');
}

/** One round of SIGKILL to everyone else: kill(-1) when nobody is spared, else each process /proc lists. */
export function killOthersNow(spared: readonly number[] = []): void {
  if (spared.length === 0) {
    try {
      process.kill(-1, 'SIGKILL');
    } catch {
      // ESRCH: nobody else.
    }
    return;
  }
  for (const pid of otherPids(spared)) killQuietly(pid);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone already, or not ours to signal.
  }
}

/** Every process in the namespace but its init, the agent and the spared. */
function otherPids(spared: readonly number[]): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid !== 1 && pid !== process.pid && !spared.includes(pid)) pids.push(pid);
  }
  return pids;
}

/** The processes but the namespace's init, the agent and the spared that are alive (zombies are dead, only not yet reaped). */
function othersAlive(spared: readonly number[]): number[] {
  return otherPids(spared).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false; // Gone while we looked.
    }
  });
}

/**
 * Removes everything in the slot's /tmp and /dev/shm (never follows a symlink
 * out), except the mount points in them (`kept`: Kiln's own code, bound there
 * when Kiln runs from /tmp, as an AppImage does) and the folders on the way to one.
 */
export function emptyScratch(dirs: readonly string[] = SLOT_SCRATCH, kept: readonly string[] = scratchMounts()): void {
  for (const dir of dirs) emptyAround(dir, kept.filter((m) => m.startsWith(`${dir}/`)));
}

function emptyAround(dir: string, kept: readonly string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const path = join(dir, name);
    if (kept.includes(path)) continue;
    if (kept.some((m) => m.startsWith(`${path}/`))) emptyAround(path, kept);
    else rmSync(path, { recursive: true, force: true });
  }
}

let mountsInScratch: string[] | undefined;

/** The mount points inside the slot's /tmp and /dev/shm, read once: the slot's mounts are fixed for its life. */
function scratchMounts(): string[] {
  if (mountsInScratch) return mountsInScratch;
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  // The fifth field is the mount point, with space, tab, newline and backslash written in octal.
  const points = text.split('\n').map((line) => (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  mountsInScratch = points.filter((p) => SLOT_SCRATCH.some((dir) => p.startsWith(`${dir}/`)));
  return mountsInScratch;
}

/**
 * Removes the System V IPC objects an action left (the slot has an IPC
 * namespace of its own, so all there are are the last action's). Removing one
 * takes its owner (or CAP_SYS_ADMIN, which the agent has not): ipcrm runs as
 * the action's uid, and only when /proc/sysvipc lists something.
 */
export function removeSysvIpc(runAs: { uid: number; gid: number } | undefined): void {
  if (!runAs || !sysvIpcLeft()) return;
  spawnSync('ipcrm', ['--all'], { uid: runAs.uid, gid: runAs.gid, stdio: 'ignore', env: { PATH: '/usr/bin:/bin' }, timeout: 10_000 });
  if (sysvIpcLeft()) throw new Error('System V IPC objects of the last action could not be removed');
}

function sysvIpcLeft(): boolean {
  return ['shm', 'msg', 'sem'].some((kind) => {
    try {
      // A header line, then one line per object.
      return readFileSync(`/proc/sysvipc/${kind}`, 'utf8').trimEnd().split('\n').length > 1;
    } catch {
      return false;
    }
  });
}

/** Everything between two actions; throws when the slot could not be made clean (the agent then exits, and the slot is made anew). */
export async function resetSlot(runAs: { uid: number; gid: number } | undefined, spared: readonly number[] = []): Promise<void> {
  await killEveryoneElse(spared);
  emptyScratch();
  removeSysvIpc(runAs);
}
