// What a killed engine leaves in the host's cgroups (its kiln/{pid}-{n} folders
// and the spare and idle cgroups in them) is removed when the next engine opens
// its limiter; a folder that still holds a process, or whose engine still runs,
// is left alone. On the host's real cgroups (root, cgroup v1 or delegated v2),
// since only the kernel's cgroup folders can be removed with files shown in them.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { detectCgroups, type CgroupLimiter } from '../../engine/sandbox/cgroups';

const host = process.platform === 'linux' && process.getuid?.() === 0 ? detectCgroups() : { reason: 'not root on Linux' };
const skip = host.limiter?.parentDirs?.length ? '' : ` (skipped: ${'reason' in host ? host.reason : 'no fixed cgroup folders'})`;

describe.skipIf(!!skip)(`stale cgroups${skip}`, () => {
  const opened: CgroupLimiter[] = [host.limiter!];
  const sleepers: ChildProcess[] = [];
  const made: string[] = [];
  afterEach(async () => {
    for (const s of sleepers.splice(0)) s.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    for (const dir of made.splice(0).reverse()) if (existsSync(dir)) rmdirSync(dir);
    for (const l of opened.splice(1)) await l.close();
  });

  function folder(path: string): string {
    mkdirSync(path);
    made.push(path);
    return path;
  }

  it("removes a killed engine's folders as the next engine opens, and leaves a busy one and a running engine's", async () => {
    // Where this process's engines put their folders: kiln/ (v1, one per hierarchy) or beside (v2).
    const parents = host.limiter!.parentDirs!;
    const v2 = basename(parents[0]).startsWith('kiln-');
    const prefix = v2 ? 'kiln-' : '';
    const deadPid = spawnSync('/bin/true').pid!;
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    sleepers.push(sleeper);
    const busyHolder = spawn('sleep', ['30'], { stdio: 'ignore' });
    sleepers.push(busyHolder);
    const dead: string[] = [];
    const kept: string[] = [];
    for (const parent of parents) {
      const dir = dirname(parent);
      // A dead engine's folder with a spare and an idle run's cgroup in it.
      const stale = folder(join(dir, `${prefix}${deadPid}-1`));
      folder(join(stale, 'run-spare-1'));
      folder(join(stale, 'run-idle'));
      dead.push(stale);
      // A running engine's (the sleeper's pid), and a dead one's that still holds a process.
      kept.push(folder(join(dir, `${prefix}${sleeper.pid}-1`)));
      const busy = folder(join(dir, `${prefix}${deadPid}-2`));
      writeFileSync(join(folder(join(busy, 'run-left')), 'cgroup.procs'), String(busyHolder.pid));
      kept.push(busy);
    }
    const next = detectCgroups();
    expect(next.limiter).toBeDefined();
    opened.push(next.limiter!);
    for (const stale of dead) expect(existsSync(stale)).toBe(false);
    for (const dir of kept) expect(existsSync(dir)).toBe(true);
    // This process's own engine, still open, keeps its folders.
    for (const parent of parents) expect(existsSync(parent)).toBe(true);
  });
});
