// Finished runs' cgroups handed to later runs with the same limits: over a fake
// limiter (who gets which cgroup, when one is not reused, close), and over the
// host's real cgroups where Kiln may write them (an OOM kill counts for its own
// run only; what a run left running is dead before the next run joins).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { detectCgroups, type ActionCgroup, type ActionLimits, type CgroupLimiter } from '../../engine/sandbox/cgroups';
import { ReusedCgroups } from '../../engine/sandbox/reused-cgroups';

class FakeLimiter implements CgroupLimiter {
  readonly name = 'fake cgroups';
  readonly enforces = { memory: true, cpus: true, pids: true };
  readonly made: string[] = [];
  readonly removed: string[] = [];
  /** Cgroups that will not empty (something in them survives SIGKILL). */
  readonly stuck = new Set<string>();
  oomNext = false;
  closed = false;
  async create(id: string, _limits: ActionLimits): Promise<ActionCgroup> {
    this.made.push(id);
    return this.cgroup(id);
  }
  private cgroup(id: string): ActionCgroup {
    const remove = () => Promise.resolve().then(() => void this.removed.push(id));
    return {
      procsFiles: [`/fake/${id}/cgroup.procs`],
      finish: async () => ({ oomKilled: false, removed: remove() }),
      finishForReuse: async () => {
        const oomKilled = this.oomNext;
        this.oomNext = false;
        const reusable = Promise.resolve().then(async () => (this.stuck.has(id) ? (await remove(), undefined) : this.cgroup(id)));
        return { oomKilled, reusable };
      },
    };
  }
  close(): void {
    this.closed = true;
  }
}

const limits = { memoryBytes: 1024, pids: 10 };
const settle = async (c: ActionCgroup) => {
  const r = await c.finish();
  await r.removed;
  return r;
};

describe('ReusedCgroups', () => {
  it('hands a finished run\'s cgroup to the next run with the same limits', async () => {
    const inner = new FakeLimiter();
    const cgroups = new ReusedCgroups(inner);
    const first = await cgroups.create('run-1', { ...limits });
    await settle(first);
    const second = await cgroups.create('run-2', { ...limits });
    expect(second.procsFiles).toEqual(first.procsFiles);
    expect(inner.made).toEqual(['pooled-1']);
    expect(inner.removed).toEqual([]);
  });

  it('makes a new cgroup for other limits, and while the only one is still in use', async () => {
    const inner = new FakeLimiter();
    const cgroups = new ReusedCgroups(inner);
    const first = await cgroups.create('run-1', { ...limits });
    const concurrent = await cgroups.create('run-2', { ...limits });
    expect(concurrent.procsFiles).not.toEqual(first.procsFiles);
    await settle(first);
    const other = await cgroups.create('run-3', { memoryBytes: 4096, pids: 10 });
    expect(other.procsFiles).toEqual(['/fake/pooled-3/cgroup.procs']);
    expect(inner.made).toEqual(['pooled-1', 'pooled-2', 'pooled-3']);
  });

  it('says a run was OOM-killed only for that run', async () => {
    const inner = new FakeLimiter();
    const cgroups = new ReusedCgroups(inner);
    inner.oomNext = true;
    expect((await settle(await cgroups.create('run-1', { ...limits }))).oomKilled).toBe(true);
    expect((await settle(await cgroups.create('run-2', { ...limits }))).oomKilled).toBe(false);
    expect(inner.made).toEqual(['pooled-1']);
  });

  it('does not reuse a cgroup that would not empty', async () => {
    const inner = new FakeLimiter();
    const cgroups = new ReusedCgroups(inner);
    inner.stuck.add('pooled-1');
    await settle(await cgroups.create('run-1', { ...limits }));
    expect(inner.removed).toEqual(['pooled-1']);
    const next = await cgroups.create('run-2', { ...limits });
    expect(next.procsFiles).toEqual(['/fake/pooled-2/cgroup.procs']);
  });

  it('keeps at most maxIdle cgroups waiting and removes the rest', async () => {
    const inner = new FakeLimiter();
    const cgroups = new ReusedCgroups(inner, 2);
    const runs = await Promise.all([1, 2, 3].map((n) => cgroups.create(`run-${n}`, { ...limits })));
    for (const r of runs) await settle(r);
    expect(cgroups.idleCount).toBe(2);
    expect(inner.removed).toEqual(['pooled-3']);
  });

  it('removes the waiting cgroups on close, and reuses none after it', async () => {
    const inner = new FakeLimiter();
    const cgroups = new ReusedCgroups(inner);
    const kept = await cgroups.create('run-1', { ...limits });
    const late = await cgroups.create('run-2', { ...limits });
    await settle(kept);
    const closing = cgroups.close();
    await settle(late);
    await closing;
    expect([...inner.removed].sort()).toEqual(['pooled-1', 'pooled-2']);
    expect(inner.closed).toBe(true);
    expect(cgroups.idleCount).toBe(0);
  });

  it('names the cgroups it makes for the pool, not for the run that made one, since later runs share it', async () => {
    const inner = new FakeLimiter();
    const cgroups = new ReusedCgroups(inner);
    await settle(await cgroups.create('kiln-warm-up', { ...limits }));
    const real = await cgroups.create('an-action', { ...limits });
    expect(real.procsFiles.join()).not.toMatch(/warm-up|an-action/);
  });

  it('passes through a limiter that cannot reuse', async () => {
    const inner = new FakeLimiter();
    const plain: CgroupLimiter = { ...inner, name: inner.name, enforces: inner.enforces, close: () => inner.close(), create: async (id, l) => ({ ...(await inner.create(id, l)), finishForReuse: undefined }) };
    const cgroups = new ReusedCgroups(plain);
    await settle(await cgroups.create('run-1', { ...limits }));
    await cgroups.create('run-2', { ...limits });
    expect(inner.made).toEqual(['pooled-1', 'pooled-2']);
  });
});

// The host's cgroups, where they are there and writable (root on a cgroup v1 or delegated v2 host).
const host = process.platform === 'linux' && process.getuid?.() === 0 ? detectCgroups() : { reason: 'not root on Linux' };
const hostSkip = host.limiter && host.limiter.enforces.memory ? '' : ` (skipped: ${'reason' in host ? host.reason : 'no memory controller'})`;

/** Runs `script` with sh inside the cgroup (it joins before it runs anything) and resolves when sh exits. */
function runIn(cgroup: ActionCgroup, script: string): Promise<void> {
  const join = cgroup.procsFiles.map((f) => `echo $$ > ${f}`).join(' && ');
  const child = spawn('/bin/sh', ['-c', `${join} || exit 1\n${script}`], { stdio: 'ignore' });
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

describe.skipIf(!!hostSkip)(`ReusedCgroups over the host's cgroups${hostSkip}`, () => {
  it('counts an OOM kill for its own run only, and kills what a run left before the next one joins', async () => {
    const cgroups = new ReusedCgroups(host.limiter!);
    const limits = { memoryBytes: 96 * 1024 * 1024, pids: 64 };
    try {
      const hungry = await cgroups.create(`reuse-test-${process.pid}`, limits);
      await runIn(hungry, `exec ${process.execPath} -e 'const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))'`);
      expect((await settle(hungry)).oomKilled).toBe(true);

      const next = await cgroups.create('unused-name', limits);
      expect(next.procsFiles).toEqual(hungry.procsFiles);
      // Leaves a process behind in the cgroup.
      await runIn(next, 'sleep 100 &');
      expect(readFileSync(next.procsFiles[0], 'utf8').trim()).not.toBe('');
      expect((await settle(next)).oomKilled).toBe(false);

      const third = await cgroups.create('unused-name-2', limits);
      expect(third.procsFiles).toEqual(hungry.procsFiles);
      for (const f of third.procsFiles) expect(readFileSync(f, 'utf8').trim()).toBe('');
      await settle(third);
    } finally {
      await cgroups.close();
    }
  }, 30_000);
});
