// Whether a process still runs, by its pid: for what a dead process left
// behind (a data folder's lock, an engine's cgroups) and may be taken over.

/** True while `pid` runs, as this user's or (EPERM) another's. */
export function isProcessRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
