// Materialises an input plan under an action's exec root. Non-executable files
// are hard links to the store's read-only files when both live on one file
// system (no copy at all); executables and everything else are copies. A hard
// link shares its inode with the store, and permissions do not stop root, so
// the inodes handed out are recorded and checked after the run: an action that
// changed one has corrupted that blob, which is then dropped from the store.
import { chmod, copyFile, link, lstat, mkdir, symlink } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { BlobDigest } from '../digest';
import type { BlobStore } from '../store/blob-store';
import type { InputPlan } from './input-tree';

export interface LinkedInput {
  path: string;
  digest: BlobDigest;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  mode: number;
}

export interface StagingResult {
  linked: LinkedInput[];
  copied: number;
}

const CONCURRENCY = 32;

export async function stageInputs(store: BlobStore, plan: InputPlan, execRoot: string): Promise<StagingResult> {
  // Parents come before children in the plan, so creating in order never races.
  for (const dir of plan.directories) await mkdir(join(execRoot, dir), { recursive: true, mode: 0o755 });

  const linked: LinkedInput[] = [];
  let copied = 0;
  let linkingWorks = true;
  await forEachLimited(plan.files, CONCURRENCY, async (file) => {
    const dest = join(execRoot, file.path);
    const source = await store.localPath?.(file.digest);
    if (source && !file.executable && linkingWorks) {
      try {
        await link(source, dest);
        const st = await lstat(dest, { bigint: true });
        linked.push({ path: file.path, digest: file.digest, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, mode: Number(st.mode) });
        return;
      } catch (err) {
        // Another file system (EXDEV) or no link support: copy from now on.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') linkingWorks = false;
        else throw err;
      }
    }
    if (source) await copyFile(source, dest);
    else await pipeline(await store.read(file.digest), createWriteStream(dest, { mode: 0o644 }));
    await chmod(dest, file.executable ? 0o555 : 0o444);
    copied++;
  });
  for (const s of plan.symlinks) await symlink(s.target, join(execRoot, s.path));
  return { linked, copied };
}

/** The hard-linked inputs whose inode changed during the run (content, size or mode). */
export async function findTamperedInputs(execRoot: string, linked: LinkedInput[]): Promise<LinkedInput[]> {
  const tampered: LinkedInput[] = [];
  await forEachLimited(linked, CONCURRENCY, async (l) => {
    try {
      // Stat by inode identity: the action may have replaced the path, which is harmless.
      const st = await lstat(join(execRoot, l.path), { bigint: true });
      if (st.ino !== l.ino) return;
      if (st.size !== l.size || st.mtimeNs !== l.mtimeNs || Number(st.mode) !== l.mode) tampered.push(l);
    } catch {
      // Removed by the action: the store's link is untouched.
    }
  });
  return tampered;
}

export async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(workers);
}
