import { afterEach, describe, expect, it, vi } from 'vitest';
import { BackgroundRemovals } from '../../engine/worker/background-removals';

/** A remover whose removals end only when the test says so. */
function heldRemover() {
  const holds = new Map<string, () => void>();
  const remove = (path: string) => new Promise<void>((resolve) => holds.set(path, resolve));
  const finish = (path: string) => holds.get(path)!();
  return { remove, finish, started: () => [...holds.keys()] };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('BackgroundRemovals', () => {
  it('answers before the tree is gone, and settled() waits for every removal', async () => {
    const r = heldRemover();
    const removals = new BackgroundRemovals(r.remove, 4);
    await removals.add('/build/a'); // resolves while the removal is still held
    await removals.add('/build/b');
    expect(r.started()).toEqual(['/build/a', '/build/b']);
    expect(removals.size).toBe(2);

    let settled = false;
    const done = removals.settled().then(() => (settled = true));
    r.finish('/build/a');
    await tick();
    expect(settled).toBe(false);
    r.finish('/build/b');
    await done;
    expect(removals.size).toBe(0);
  });

  it('makes an answer wait for its own removal once too many are behind', async () => {
    const r = heldRemover();
    const removals = new BackgroundRemovals(r.remove, 2);
    await removals.add('/build/1');
    await removals.add('/build/2');
    let thirdAnswered = false;
    const third = removals.add('/build/3').then(() => (thirdAnswered = true));
    await tick();
    expect(thirdAnswered).toBe(false); // three behind, over the bound of two
    r.finish('/build/1');
    await tick();
    expect(thirdAnswered).toBe(false); // it waits for its own tree, not any
    r.finish('/build/3');
    await third;
    expect(removals.size).toBe(1);
  });

  describe('deferred to a quiet moment', () => {
    afterEach(() => {
      vi.useRealTimers();
    });
    const limits = { quietMs: 1_000, maxRoots: 3, maxBytes: 1_000 };

    it('sets exec roots aside while actions keep finishing, and removes them all once none has for quietMs', async () => {
      vi.useFakeTimers();
      const r = heldRemover();
      const removals = new BackgroundRemovals(r.remove, 32, limits);
      await removals.add('/build/a');
      await vi.advanceTimersByTimeAsync(900);
      await removals.add('/build/b'); // another action finished: the quiet wait starts again
      await vi.advanceTimersByTimeAsync(900);
      expect(r.started()).toEqual([]);
      expect(removals.size).toBe(2);
      await vi.advanceTimersByTimeAsync(100);
      expect(r.started()).toEqual(['/build/a', '/build/b']);
      r.finish('/build/a');
      r.finish('/build/b');
      await removals.settled();
      expect(removals.size).toBe(0);
    });

    it('removes the oldest at once past maxRoots or maxBytes, without waiting for quiet', async () => {
      vi.useFakeTimers();
      const r = heldRemover();
      const removals = new BackgroundRemovals(r.remove, 32, limits);
      for (const p of ['/build/1', '/build/2', '/build/3']) await removals.add(p, 10);
      expect(r.started()).toEqual([]);
      await removals.add('/build/4', 10); // a fourth root: over maxRoots
      expect(r.started()).toEqual(['/build/1']);
      await removals.add('/build/5', 995); // 1,025 bytes of outputs set aside: the oldest go until it is under 1,000
      expect(r.started()).toEqual(['/build/1', '/build/2', '/build/3', '/build/4']);
      expect(removals.size).toBe(5); // 4 being removed, /build/5 set aside
    });

    it('settled() starts what is set aside and waits for it', async () => {
      const r = heldRemover();
      const removals = new BackgroundRemovals(r.remove, 32, { ...limits, quietMs: 60_000 });
      await removals.add('/build/x');
      let settled = false;
      const done = removals.settled().then(() => (settled = true));
      await tick();
      expect(r.started()).toEqual(['/build/x']);
      expect(settled).toBe(false);
      r.finish('/build/x');
      await done;
      expect(removals.size).toBe(0);
    });
  });
});
