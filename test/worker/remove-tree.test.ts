// Removing an exec root, on the main thread (removeTree, the fallback) and on the
// TreeRemover's worker thread: the tree goes entirely, nothing outside it is touched.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTree } from '../../engine/worker/remove-tree';
import { TreeRemover } from '../../engine/worker/tree-remover';

const root = mkdtempSync(join(tmpdir(), 'kiln-remove-tree-'));
const remover = new TreeRemover();
// Up before the tests, so that they exercise the thread and not its stand-in while it starts.
beforeAll(() => remover.warm());
afterAll(async () => {
  await remover.close();
  await removeTree(root);
});

let seq = 0;
function tree(): string {
  const top = join(root, `exec-${seq++}`);
  mkdirSync(join(top, 'bazel-out/k8-fastbuild/bin/deep/er'), { recursive: true });
  writeFileSync(join(top, 'bazel-out/k8-fastbuild/bin/out.txt'), 'out');
  writeFileSync(join(top, 'bazel-out/k8-fastbuild/bin/deep/er/x'), 'x');
  for (let i = 0; i < 40; i++) writeFileSync(join(top, `file-${i}`), String(i)); // more than one parallel batch
  return top;
}

describe.each([
  ['removeTree', removeTree],
  ['TreeRemover', (path: string) => remover.remove(path)],
])('%s', (_name, removeTree) => {
  it('removes nested folders, files and a name that is not UTF-8', async () => {
    const top = tree();
    writeFileSync(Buffer.concat([Buffer.from(`${top}/bad-`), Buffer.from([0xff, 0xfe])]), 'not utf-8');
    mkdirSync(join(top, 'empty'));
    await removeTree(top);
    expect(existsSync(top)).toBe(false);
  });

  it('unlinks symlinks without following them, to files or to folders outside', async () => {
    const outside = join(root, `outside-${seq++}`);
    mkdirSync(outside);
    writeFileSync(join(outside, 'keep.txt'), 'keep');
    const top = tree();
    symlinkSync(outside, join(top, 'to-dir'));
    symlinkSync(join(outside, 'keep.txt'), join(top, 'bazel-out/to-file'));
    symlinkSync('missing', join(top, 'dangling'));
    await removeTree(top);
    expect(existsSync(top)).toBe(false);
    expect(readFileSync(join(outside, 'keep.txt'), 'utf8')).toBe('keep');
  });

  it('removes read-only folders an action left behind', async () => {
    const top = tree();
    chmodSync(join(top, 'bazel-out/k8-fastbuild/bin/deep'), 0o555);
    chmodSync(top, 0o500);
    await removeTree(top);
    expect(existsSync(top)).toBe(false);
  });

  it('gives the event loop turns while it removes a large tree', async () => {
    const top = join(root, `big-${seq++}`);
    for (let d = 0; d < 10; d++) {
      mkdirSync(join(top, `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) writeFileSync(join(top, `d${d}`, `f${f}`), '');
    }
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    await removeTree(top);
    ticking = false;
    expect(existsSync(top)).toBe(false);
    // 1,000 files and 11 folders, 64 calls a batch: the loop ran between batches.
    expect(turns).toBeGreaterThanOrEqual(10);
  });

  it('is quiet about a path that is already gone, and removes a plain file', async () => {
    await expect(removeTree(join(root, 'never-made'))).resolves.toBeUndefined();
    const file = join(root, `file-${seq++}`);
    writeFileSync(file, 'f');
    await removeTree(file);
    expect(existsSync(file)).toBe(false);
  });
});

describe('TreeRemover while its thread starts', () => {
  it('removes on the calling thread until the worker runs, then on the worker', async () => {
    const onThisThread: string[] = [];
    const starting = new TreeRemover(async (path) => {
      onThisThread.push(path);
      await removeTree(path);
    });
    try {
      const first = tree();
      await starting.remove(first); // the thread was not even started: no waiting for it
      expect(existsSync(first)).toBe(false);
      expect(onThisThread).toEqual([first]);
      // A removal alone does not start the thread: warm() does.
      expect(starting.started).toBe(false);

      await starting.warm();
      const second = tree();
      await starting.remove(second);
      expect(existsSync(second)).toBe(false);
      expect(onThisThread).toEqual([first]);
    } finally {
      await starting.close();
    }
  });
});
