// The cgroup made ahead for the next action, over a fake limiter: who gets
// the spare, that no two actions share one, and that close() removes it.
import { describe, expect, it } from 'vitest';
import type { ActionCgroup, ActionLimits, CgroupLimiter } from '../../engine/sandbox/cgroups';
import { PrewarmedCgroups } from '../../engine/sandbox/prewarmed-cgroups';

class FakeLimiter implements CgroupLimiter {
  readonly name = 'fake cgroups';
  readonly enforces = { memory: true, cpus: true, pids: true };
  readonly made: string[] = [];
  readonly removed: string[] = [];
  closed = false;
  async create(id: string, _limits: ActionLimits): Promise<ActionCgroup> {
    this.made.push(id);
    return { procsFiles: [`/fake/${id}/cgroup.procs`], finish: async () => ({ oomKilled: false, removed: Promise.resolve().then(() => void this.removed.push(id)) }) };
  }
  close(): void {
    this.closed = true;
  }
}

const defaults = { memoryBytes: 1024, pids: 10 };
const turn = () => new Promise((r) => setImmediate(r));

describe('PrewarmedCgroups', () => {
  it('makes the first cgroup on demand, then has the next one made before it is asked for', async () => {
    const inner = new FakeLimiter();
    const cgroups = new PrewarmedCgroups(inner, defaults);
    expect(inner.made).toEqual([]);
    const first = await cgroups.create('run-1', { ...defaults });
    expect(first.procsFiles).toEqual(['/fake/run-1/cgroup.procs']);
    await turn();
    expect([...inner.made].sort()).toEqual(['run-1', 'spare-1']);
    const second = await cgroups.create('run-2', { ...defaults });
    expect(second.procsFiles).toEqual(['/fake/spare-1/cgroup.procs']);
    await turn();
    expect([...inner.made].sort()).toEqual(['run-1', 'spare-1', 'spare-2']);
  });

  it('makes the spare after the action that took one has gone on, not on its way', async () => {
    const inner = new FakeLimiter();
    const cgroups = new PrewarmedCgroups(inner, defaults);
    await cgroups.create('run-1', { ...defaults });
    await turn();
    const second = await cgroups.create('run-2', { ...defaults });
    // run-2 has its cgroup; the next spare (made with synchronous calls by the real limiters) waits for a later turn.
    expect(second.procsFiles).toEqual(['/fake/spare-1/cgroup.procs']);
    expect(inner.made).not.toContain('spare-2');
    await turn();
    expect(inner.made).toContain('spare-2');
  });

  it('makes no spare once closed', async () => {
    const inner = new FakeLimiter();
    const cgroups = new PrewarmedCgroups(inner, defaults);
    await cgroups.create('run-1', { ...defaults });
    await cgroups.close();
    await turn();
    expect(inner.made).toEqual(['run-1']);
    expect(inner.closed).toBe(true);
  });

  it('gives actions that arrive together different cgroups', async () => {
    const cgroups = new PrewarmedCgroups(new FakeLimiter(), defaults);
    await cgroups.create('run-1', { ...defaults });
    const both = await Promise.all([cgroups.create('run-2', { ...defaults }), cgroups.create('run-3', { ...defaults })]);
    expect(new Set(both.map((c) => c.procsFiles[0])).size).toBe(2);
  });

  it('makes a fresh cgroup for an action with limits of its own', async () => {
    const inner = new FakeLimiter();
    const cgroups = new PrewarmedCgroups(inner, defaults);
    const own = await cgroups.create('run-1', { memoryBytes: 4096, pids: 10 });
    expect(own.procsFiles).toEqual(['/fake/run-1/cgroup.procs']);
    expect(inner.made).toEqual(['run-1']);
  });

  it('removes the unused spare on close, then closes the limiter', async () => {
    const inner = new FakeLimiter();
    const cgroups = new PrewarmedCgroups(inner, defaults);
    await cgroups.create('run-1', { ...defaults });
    await turn();
    await cgroups.close();
    expect(inner.removed).toEqual(['spare-1']);
    expect(inner.closed).toBe(true);
  });
});
