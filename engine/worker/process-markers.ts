// Finding every process an action started, even those that left its process
// group. `setsid`, double forks and daemonising change the session, the group and
// the parent, but a child keeps the open files it inherited. Each action is handed
// a marker: an extra descriptor (fd 3), one end of a socket pair nothing else can
// connect to (marker-sockets.ts); the launcher holds the other end, and reads EOF
// on it when no process holds the marker any more. Sweeping /proc for processes holding the
// marker is the fallback that works without cgroups or a PID namespace, and leaves
// the action's environment exactly as the Command gives it. A process that closes
// every descriptor still escapes; the stronger tools are the sandbox's job.
import { fstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs';

/** A file by identity, not by name: what the processes hold open. */
export interface FileIdentity {
  dev: number;
  ino: number;
}

/** Rounds of find-and-kill: a process forking while we look is caught by the next round. */
const SWEEP_ROUNDS = 5;

/** The descriptor of the action's marker in the action's processes. */
export const MARKER_FD = 3;

/** The file open as `fd`. */
export function fdIdentity(fd: number): FileIdentity {
  const st = fstatSync(fd);
  return { dev: st.dev, ino: st.ino };
}

/**
 * Pids holding any of `files` open, other than ours and those in `except` (the
 * other holder of the markers); Linux only (elsewhere none are found).
 */
/** The last pid the kernel handed out (/proc/loadavg's last field); undefined when unreadable. */
function lastPid(): number | undefined {
  try {
    const n = Number(readFileSync('/proc/loadavg', 'latin1').trim().split(' ').pop());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `firstPid`: the action's first process. Linux hands out pids in increasing
 * order, so everything the action started has a pid at or above it unless the
 * counter wrapped since (then the last pid handed out is below it, and every
 * process is looked at). Skipping older processes avoids a stat of every
 * descriptor on the machine: the full sweep cost ~5 ms per action.
 */
export function findProcessesHolding(files: FileIdentity[], except: number[] = [], firstPid?: number): number[] {
  if (process.platform !== 'linux' || files.length === 0) return [];
  const skip = new Set([process.pid, ...except].map(String));
  const last = firstPid === undefined ? undefined : lastPid();
  const floor = firstPid !== undefined && last !== undefined && last >= firstPid ? firstPid : 0;
  const wanted = new Set(files.map((f) => `${f.dev}:${f.ino}`));
  const found: number[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const name of pids) {
    if (!/^\d+$/.test(name) || skip.has(name) || Number(name) < floor) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${name}/fd`);
    } catch {
      continue; // gone, or another user's
    }
    for (const fd of fds) {
      try {
        const st = statSync(`/proc/${name}/fd/${fd}`);
        if (wanted.has(`${st.dev}:${st.ino}`)) {
          found.push(Number(name));
          break;
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return found;
}

/** SIGKILLs every process holding any of `files`, until none is left; returns how many were killed. */
export function killProcessesHolding(files: FileIdentity[], except: number[] = [], firstPid?: number): number {
  let killed = 0;
  for (let round = 0; round < SWEEP_ROUNDS; round++) {
    const pids = findProcessesHolding(files, except, firstPid);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // ESRCH: it went by itself.
      }
    }
  }
  return killed;
}

/**
 * SIGKILLs every process (other than ours) whose working directory is one of
 * `dirs` or below it; returns how many were killed. The fallback for an action
 * whose launcher died before it could report the action's pid and marker: the
 * action was started in its exec root a moment ago and is still there.
 */
export function killProcessesWorkingIn(dirs: string[]): number {
  if (process.platform !== 'linux' || dirs.length === 0) return 0;
  // /proc/<pid>/cwd names the real path: an exec root reached through a symlink
  // (a /var/tmp that links elsewhere) is compared by both of its names.
  const names = dirs.flatMap((d) => [d, canonical(d)]);
  const inside = (cwd: string) => names.some((d) => cwd === d || cwd.startsWith(d.endsWith('/') ? d : `${d}/`));
  const killed = new Set<number>();
  for (let round = 0; round < SWEEP_ROUNDS; round++) {
    let fresh = 0;
    let pids: string[];
    try {
      pids = readdirSync('/proc');
    } catch {
      break;
    }
    for (const name of pids) {
      const pid = Number(name);
      // A process killed in an earlier round may not be gone yet: once is enough.
      if (!/^\d+$/.test(name) || pid === process.pid || killed.has(pid)) continue;
      let cwd: string;
      try {
        cwd = readlinkSync(`/proc/${name}/cwd`);
      } catch {
        continue; // gone, or not ours to look at
      }
      if (!inside(cwd)) continue;
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
        fresh++;
      } catch {
        // ESRCH: it went by itself.
      }
    }
    if (fresh === 0) break;
  }
  return killed.size;
}

function canonical(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return dir; // already removed: its processes have nowhere to work
  }
}
