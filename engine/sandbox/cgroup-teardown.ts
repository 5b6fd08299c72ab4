// Emptying and removing one cgroup directory: what v1 and v2 share.
import { readFile, rmdir } from 'node:fs/promises';

/** SIGKILLs every process listed in the cgroup, then removes it (retrying while the dying leave). */
export async function killAndRemove(dir: string, attempts = 50): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    await killListed(dir);
    try {
      await rmdir(dir);
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

/** SIGKILLs every process listed in the cgroup now; the caller removes it later (killAndRemove). */
export async function killListed(dir: string): Promise<void> {
  let text = '';
  try {
    text = await readFile(`${dir}/cgroup.procs`, 'utf8');
  } catch {
    return;
  }
  for (const pid of text.split('\n').map(Number).filter((n) => n > 0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** A counter from a "key value" file (memory.oom_control, memory.events); 0 when absent. */
export async function readCounter(file: string, key: string): Promise<number> {
  try {
    const text = await readFile(file, 'utf8');
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
