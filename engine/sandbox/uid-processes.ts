// Finding and killing every process that runs as a uid, for the uid pool
// (action-identities.ts). /proc/<pid> belongs to the process's effective uid,
// so one readdir and a stat per process finds them. Killing is left to the uid itself: a small
// shell started as that uid runs `kill -KILL -1`, which the kernel sends to
// every process that uid may signal, in one call, with no pid read from /proc
// that could meanwhile belong to someone else.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import type { ActionIdentity } from './action-identities';

/**
 * Pids of the live processes whose effective uid is `uid` (zombies are already
 * dead: their parent reaps them). Synchronous on purpose: a stat of /proc is
 * answered from memory, and a few hundred of them cost well under a
 * millisecond this way, where one promise each through the thread pool cost
 * about 8 ms of CPU for 117 processes.
 */
export function processesOf(uid: number, proc = '/proc'): number[] {
  return processesIn({ first: uid, last: uid }, proc).map((p) => p.pid);
}

/** The live processes whose effective uid is in `range`, with that uid. */
export function processesIn(range: { first: number; last: number }, proc = '/proc'): { pid: number; uid: number }[] {
  const found: { pid: number; uid: number }[] = [];
  for (const name of readdirSync(proc)) {
    if (!/^\d+$/.test(name)) continue;
    const st = statSync(`${proc}/${name}`, { throwIfNoEntry: false });
    if (!st || st.uid < range.first || st.uid > range.last) continue;
    // The state follows the command's closing parenthesis: "1234 (sh) Z …".
    let line = '';
    try {
      line = readFileSync(`${proc}/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const state = line.charAt(line.lastIndexOf(')') + 2);
    if (state && state !== 'Z' && state !== 'X') found.push({ pid: Number(name), uid: st.uid });
  }
  return found;
}

/** Kills whatever runs as `id.uid`; returns how many processes there were. A few rounds, for one that forks meanwhile. */
export async function killProcessesOf(id: ActionIdentity): Promise<number> {
  if (process.platform !== 'linux') return 0;
  const found = processesOf(id.uid).length;
  // One look in the common case (nothing left): this runs after every action.
  let left = found;
  for (let round = 0; round < 5 && left > 0; round++) {
    await new Promise<void>((resolve) => {
      const child = spawn('/bin/sh', ['-c', 'kill -KILL -1'], { uid: id.uid, gid: id.gid, stdio: 'ignore', env: {} });
      child.once('error', () => resolve());
      child.once('exit', () => resolve());
    });
    left = await goneOrLeft(id.uid);
  }
  return found;
}

/**
 * How many processes still run as `uid` once the ones just killed have had a
 * moment to die: SIGKILL is delivered when a process is next scheduled, so on
 * a busy machine it can still be listed for a few milliseconds after the kill.
 */
async function goneOrLeft(uid: number, waitMs = 500): Promise<number> {
  const end = Date.now() + waitMs;
  let left = processesOf(uid).length;
  while (left > 0 && Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    left = processesOf(uid).length;
  }
  return left;
}

/**
 * Kills whatever runs as any uid of `range` (at start: a Kiln that died may
 * have left escaped processes under the uids its successor hands out again).
 * Returns how many processes there were.
 */
export async function killProcessesIn(range: { first: number; last: number }): Promise<number> {
  if (process.platform !== 'linux') return 0;
  const found = processesIn(range);
  for (const uid of new Set(found.map((p) => p.uid))) await killProcessesOf({ uid, gid: uid });
  return found.length;
}
