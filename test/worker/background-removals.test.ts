import { describe, expect, it } from 'vitest';
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
});
