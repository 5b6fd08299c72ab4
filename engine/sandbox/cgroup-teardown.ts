// Emptying and removing one cgroup directory: what v1 and v2 share.
// Synchronous calls: cgroup files are the kernel's, answered without a disk, and a
// call costs microseconds where a trip through libuv's pool (and fs/promises'
// FileHandle for a readFile) cost the engine's main thread more than the call itself.
import { readFileSync, rmdirSync } from 'node:fs';

/** SIGKILLs every process listed in the cgroup, then removes it (retrying while the dying leave). */
export async function killAndRemove(dir: string, attempts = 50): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    killListed(dir);
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') throw err;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`cgroup ${dir} still has processes after SIGKILL`);
}

/**
 * SIGKILLs what is listed until the cgroups are empty, so they can serve another
 * run; false when they would not empty in time (the caller then removes them).
 */
export async function killUntilEmpty(dirs: readonly string[], attempts = 50): Promise<boolean> {
  for (let i = 0; i < attempts; i++) {
    let listed: number | undefined = 0;
    for (const dir of dirs) {
      const n = killListed(dir);
      listed = n === undefined || listed === undefined ? undefined : listed + n;
    }
    // Nothing listed anywhere: empty already, with no second read (nothing is left to fork into them).
    if (listed === 0 || dirs.every(isEmpty)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

function isEmpty(dir: string): boolean {
  try {
    return readFileSync(`${dir}/cgroup.procs`, 'utf8').trim() === '';
  } catch {
    return false;
  }
}

/**
 * SIGKILLs every process listed in the cgroup now; the caller removes it later (killAndRemove).
 * Returns how many were listed, or undefined when the list could not be read.
 */
export function killListed(dir: string): number | undefined {
  let text = '';
  try {
    text = readFileSync(`${dir}/cgroup.procs`, 'utf8');
  } catch {
    return undefined;
  }
  const pids = text.split('\n').map(Number).filter((n) => n > 0);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return pids.length;
}

/** A counter from a "key value" file (memory.oom_control, memory.events); 0 when absent. */
export function readCounter(file: string, key: string): number {
  try {
    const text = readFileSync(file, 'utf8');
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Resolves on the event loop's next turn: work started after it runs behind what this turn answers. */
export function nextTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
