// Cgroup folders an engine left behind when it was killed (kill -9, a crash,
// power): its parent folder kiln/{pid}-{n} and the runs' cgroups in it, spare
// and idle ones included, stay on the host until someone removes them. Each
// memory cgroup holds one of the kernel's 65,535 memory cgroup ids while it
// exists, and pids come round again (pid_max is 32,768 on many hosts): a new
// engine with a dead one's pid would make its cgroups inside the dead one's
// folder and fail on any name it left there. So each engine, as it opens its
// limiter, removes the empty folders of engines that are no longer running.
// Conservative by design: it never kills; a folder that still holds a process
// (an engine in a PID namespace this one cannot see, say) is left alone.
import { readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { isProcessRunning } from '../util/process-running';

/**
 * Removes, from `dir`, each folder whose name `pattern` matches with an
 * engine's pid as its first group when that engine is gone, or whose name is
 * `reusing` (this engine's own name, so a folder of that name was a dead
 * engine's with the same pid), along with the empty cgroups inside it.
 * Returns how many such folders it removed.
 */
export function removeStaleCgroups(dir: string, pattern: RegExp, reusing: string): number {
  let removed = 0;
  for (const name of listFolders(dir)) {
    const m = pattern.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const stale = name === reusing || (pid !== process.pid && !isProcessRunning(pid));
    if (stale && removeEmptyTree(join(dir, name))) removed++;
  }
  return removed;
}


/** Removes a cgroup and those below it, deepest first, if none holds a process; false if any is left. */
function removeEmptyTree(cgroup: string): boolean {
  for (const child of listFolders(cgroup)) {
    if (!removeEmptyTree(join(cgroup, child))) return false;
  }
  if (holdsProcesses(cgroup)) return false;
  try {
    rmdirSync(cgroup);
    return true;
  } catch {
    return false;
  }
}

function holdsProcesses(cgroup: string): boolean {
  try {
    return readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').trim() !== '';
  } catch {
    return true;
  }
}

function listFolders(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}
