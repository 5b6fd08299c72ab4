// A few KB of Directory messages that reuse each other can describe millions of
// paths. The planner refuses such trees from their expanded size before planning a
// single path, and keeps the event loop free while it plans a large tree it accepts.
import { describe, expect, it } from 'vitest';
import { toWireDigest, type BlobDigest } from '../../engine/digest';
import { GrpcError, Status } from '../../engine/grpc/status';
import { reapi } from '../../engine/proto';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { DEFAULT_INPUT_TREE_LIMITS, planInputTree } from '../../engine/worker/input-tree';
import { putBlob, putMessage } from '../worker/tree-builder';

/**
 * A DAG of `levels` Directory messages, each holding `files` files and two
 * subdirectories that are the same message: 2^levels directories once expanded.
 */
async function doublingTree(store: MemoryBlobStore, levels: number, files: number, content = 'x'): Promise<BlobDigest> {
  const blob = await putBlob(store, content);
  const fileNodes = Array.from({ length: files }, (_, i) => reapi.FileNode.create({ name: `f${String(i).padStart(4, '0')}`, digest: toWireDigest(blob) }));
  let below: BlobDigest | undefined;
  for (let level = 0; level < levels; level++) {
    const directories = below
      ? ['a', 'b'].map((name) => reapi.DirectoryNode.create({ name, digest: toWireDigest(below!) }))
      : [];
    below = await putMessage(store, reapi.Directory, reapi.Directory.create({ files: fileNodes, directories }));
  }
  return below!;
}

/** Ticks every 10 ms; stop() resolves with the longest gap between ticks, the last one (after the work) included. */
function heartbeat(): { stop(): Promise<number> } {
  let last = performance.now();
  let longest = 0;
  const tick = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  };
  const timer = setInterval(tick, 10);
  return {
    stop: () =>
      new Promise((resolve) =>
        setTimeout(() => {
          tick();
          clearInterval(timer);
          resolve(longest);
        }, 0),
      ),
  };
}

async function planError(p: Promise<unknown>): Promise<GrpcError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GrpcError);
  return err as GrpcError;
}

describe('input tree bounds', () => {
  it('refuses a 2 KB tree that expands to 2^40 directories with RESOURCE_EXHAUSTED, at once', async () => {
    const store = new MemoryBlobStore();
    const root = await doublingTree(store, 41, 1);
    const started = process.cpuUsage();
    const err = await planError(planInputTree(store, root));
    const cpuMs = (process.cpuUsage(started).user + process.cpuUsage(started).system) / 1000;
    expect(err.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(err.message).toMatch(/more than \d+ (files|directories).*once expanded.*split the action's inputs/);
    expect(cpuMs).toBeLessThan(2_000); // nothing was expanded: a few dozen messages were read
  });

  it('counts files where each shared directory appears', async () => {
    const store = new MemoryBlobStore();
    const root = await doublingTree(store, 8, 10); // 255 directories, 2,550 files
    const err = await planError(planInputTree(store, root, { ...DEFAULT_INPUT_TREE_LIMITS, maxFiles: 2_000 }));
    expect(err.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(err.message).toMatch(/more than 2000 files/);
    const plan = await planInputTree(store, root, { ...DEFAULT_INPUT_TREE_LIMITS, maxFiles: 3_000 });
    expect(plan.files).toHaveLength(2_550);
    expect(plan.directories).toHaveLength(255);
  });

  it('bounds the expanded bytes', async () => {
    const store = new MemoryBlobStore();
    const root = await doublingTree(store, 6, 1, 'y'.repeat(1000)); // 63 files of 1000 bytes
    const err = await planError(planInputTree(store, root, { ...DEFAULT_INPUT_TREE_LIMITS, maxBytes: 50_000 }));
    expect(err.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(err.message).toMatch(/more than 50000 bytes/);
  });

  it('bounds depth with INVALID_ARGUMENT, also where a shared directory sits deeper than where it was first met', async () => {
    const store = new MemoryBlobStore();
    // chain: c0 <- c1 <- ... <- c9 (c9 is 9 levels tall); root holds c9 directly and under 'deep/…' 5 more levels.
    let chain = await putMessage(store, reapi.Directory, reapi.Directory.create({}));
    for (let i = 0; i < 9; i++) {
      chain = await putMessage(store, reapi.Directory, reapi.Directory.create({ directories: [{ name: 'd', digest: toWireDigest(chain) }] }));
    }
    let deep = chain;
    for (let i = 0; i < 5; i++) {
      deep = await putMessage(store, reapi.Directory, reapi.Directory.create({ directories: [{ name: 'e', digest: toWireDigest(deep) }] }));
    }
    const root = await putMessage(
      store,
      reapi.Directory,
      reapi.Directory.create({ directories: [{ name: 'a', digest: toWireDigest(chain) }, { name: 'b', digest: toWireDigest(deep) }] }),
    );
    const limits = { ...DEFAULT_INPUT_TREE_LIMITS, maxDepth: 12 };
    const err = await planError(planInputTree(store, root, limits));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.message).toMatch(/nested too deeply \(more than 12 levels\)/);
    await expect(planInputTree(store, root, { ...limits, maxDepth: 15 })).resolves.toBeTruthy();
  });

  it('keeps the event loop responsive while planning a large accepted tree', async () => {
    const store = new MemoryBlobStore();
    const root = await doublingTree(store, 16, 3); // 65,535 directories, 196,605 files
    const loop = heartbeat();
    const plan = await planInputTree(store, root);
    const stallMs = await loop.stop();
    expect(plan.files).toHaveLength(196_605);
    // A loaded machine stalls the loop on its own now and then; 400 ms is far below the
    // seconds one synchronous walk of this tree takes, and far above scheduling noise.
    expect(stallMs).toBeLessThan(400);
  }, 120_000);
});
