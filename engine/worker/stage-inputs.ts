// Materialises an input plan under an action's exec root. Non-executable files
// are hard links to the store's read-only files when both live on one file
// system (no copy at all), executables hard links to Kiln's shared executable
// copies (executable-copies.ts); anything else is a copy. A hard link shares
// its inode with the store, and permissions do not stop root, so the inodes
// handed out are recorded and checked after the run: an action that
// changed one has corrupted that blob, which is then dropped from the store.
// A LinkLedger shared by the executor's actions makes later holders of an
// inode compare against its first holder's stats (see link-ledger.ts).
import { chmod, copyFile, lstat, mkdir, readFile, symlink } from 'node:fs/promises';
import { createReadStream, createWriteStream, linkSync, lstatSync, mkdirSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DIGEST_FUNCTIONS, type BlobDigest, type DigestFunctionName } from '../digest';
import { GrpcError, missingBlobs } from '../grpc/status';
import { SyncBudget } from '../util/sync-batches';
import { BlobNotFoundError, type BlobStore } from '../store/blob-store';
import type { InputPlan } from './input-tree';
import { LinkLedger } from './link-ledger';
import type { ExecutableCopies } from './executable-copies';
import type { KnownEntries } from './no-follow';
import { SMALL_FILE_BYTES } from './outputs';

export interface LinkedInput {
  path: string;
  digest: BlobDigest;
  /** The store's file the link shares its inode with. */
  storePath: string;
  dev: bigint;
  ino: bigint;
  /** Size, mtime and mode the inode must still have: the ledger's baseline. */
  size: bigint;
  mtimeNs: bigint;
  mode: number;
  /** This action's own view right after linking (ctime moves with every link, so it is not shared). */
  ctimeNs: bigint;
  /**
   * Another action held the inode when this one linked it: it may have rewritten it
   * with the same size and put the mtime back before this link, which this action's
   * own before/after cannot see, so the check re-hashes.
   */
  sharedAtLink: boolean;
  /** Ends the store's verified reads of the blob (BlobStore.holdLinked), once the check is done. */
  unhold?: () => void;
  /**
   * The action runs as a user that can neither write nor chmod this inode
   * (Kiln's own and read-only, StageOptions.outOfReach): it cannot change, so
   * it is neither held for verified reads nor re-hashed after the run.
   */
  outOfReach?: boolean;
  /**
   * storePath is Kiln's executable copy of the blob (executable-copies.ts), not
   * the store's file: a change found after the run drops that copy, not the blob.
   */
  executableCopy?: boolean;
}

export interface StageOptions {
  /** The action runs as a user other than Kiln's, which cannot write or chmod Kiln's files (the action user). */
  outOfReach?: boolean;
  /** Where executable inputs are linked from; without it they are copied into each exec root. */
  executables?: ExecutableCopies;
}

export interface StagingResult {
  linked: LinkedInput[];
  copied: number;
}

const CONCURRENCY = 32;

/**
 * Stages `plan` under `execRoot`. Hard links are registered in `ledger`; the
 * caller releases them (releaseLinks) once the action's check is done. On
 * failure the links made so far are released here.
 */
export async function stageInputs(store: BlobStore, plan: InputPlan, execRoot: string, ledger = new LinkLedger(), opts: StageOptions = {}): Promise<StagingResult> {
  const linked: LinkedInput[] = [];
  try {
    return await stage(store, plan, execRoot, ledger, linked, opts);
  } catch (err) {
    releaseLinks(ledger, linked);
    throw err;
  }
}

export function releaseLinks(ledger: LinkLedger, linked: LinkedInput[]): void {
  for (const l of linked) {
    ledger.release(l);
    l.unhold?.();
  }
}

async function stage(store: BlobStore, plan: InputPlan, execRoot: string, ledger: LinkLedger, linked: LinkedInput[], opts: StageOptions): Promise<StagingResult> {
  const kiln = process.getuid?.();
  // Parents come before children in the plan (the exec root itself, '', first), so
  // one mkdir each is enough: no recursive mkdir and its extra stat per folder.
  // The exec root itself is made through the thread pool: its parent, the build
  // folder, is locked by the kernel while other exec roots are made and removed
  // there (by the TreeRemover's thread), so that mkdir may wait. The folders inside
  // are uncontended and cheap: synchronous, in bounded batches (util/sync-batches.ts).
  const budget = new SyncBudget();
  for (const dir of plan.directories) {
    if (dir === '') {
      // Closed to others from the start: nobody but its action may look in, even while it is staged.
      await mkdir(execRoot, { mode: 0o700 });
      continue;
    }
    mkdirSync(join(execRoot, dir), { mode: 0o755 });
    await budget.spent();
  }

  let copied = 0;
  let linkingWorks = true;
  await forEachLimited(plan.files, CONCURRENCY, async (file) => {
    const dest = join(execRoot, file.path);
    const source = await store.localPath?.(file.digest);
    if (source && linkingWorks && (!file.executable || opts.executables)) {
      try {
        const from = file.executable ? await executableCopy(store, ledger, opts.executables!, source, file.digest) : source;
        // Held before the link exists: from now until the check, the store verifies what it serves of it.
        // (An executable copy is Kiln's own file, not the store's: nothing the store serves.)
        const unhold = file.executable ? undefined : store.holdLinked?.(file.digest);
        // Synchronous like the folders: a link into this exec root and a look at it, both uncontended.
        try {
          linkSync(from, dest);
        } catch (err) {
          unhold?.();
          throw err;
        }
        const st = lstatSync(dest, { bigint: true });
        await budget.spent();
        // Kiln's and read-only, and the action another user: nothing it does can change this inode.
        const outOfReach = !!opts.outOfReach && kiln !== undefined && Number(st.uid) === kiln && (Number(st.mode) & 0o222) === 0;
        if (outOfReach) unhold?.();
        const sharedAtLink = ledger.holds(st);
        const baseline = ledger.hold({ dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, mode: Number(st.mode) });
        linked.push({
          path: file.path,
          digest: file.digest,
          storePath: from,
          ...baseline,
          ctimeNs: st.ctimeNs,
          sharedAtLink,
          unhold: outOfReach ? undefined : unhold,
          outOfReach,
          executableCopy: file.executable || undefined,
        });
        return;
      } catch (err) {
        if (err instanceof GrpcError) throw err; // the blob is missing or was found changed
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw err;
        if (code === 'ENOENT') {
          // Evicted or dropped since the tree was checked: the client uploads it again.
          if (!file.executable) throw missingBlobs([file.digest], 'input');
          // An executable copy evicted between making and linking it: this one is copied below.
        } else {
          // Another file system (EXDEV), too many links, no link support: copy from now on.
          linkingWorks = false;
        }
      }
    }
    try {
      if (source) await copyFileChecked(store, ledger, source, dest, file.digest);
      else await pipeline(await store.read(file.digest), createWriteStream(dest, { mode: 0o644 }));
    } catch (err) {
      throw asMissingInput(err, file.digest);
    }
    await chmod(dest, file.executable ? 0o555 : 0o444);
    copied++;
  });
  for (const s of plan.symlinks) await symlink(s.target, join(execRoot, s.path));
  return { linked, copied };
}

/** The shared executable copy of the blob whose store file is `source`, made now if needed. */
async function executableCopy(store: BlobStore, ledger: LinkLedger, copies: ExecutableCopies, source: string, digest: BlobDigest): Promise<string> {
  try {
    return await copies.pathFor(digest, (d, to) => copyFileChecked(store, ledger, source, to, d));
  } catch (err) {
    throw asMissingInput(err, digest);
  }
}

/** A blob gone from the store (evicted, dropped) is the client's to upload again: MISSING; anything else as it is. */
function asMissingInput(err: unknown, digest: BlobDigest): unknown {
  const gone = err instanceof BlobNotFoundError || (err as NodeJS.ErrnoException).code === 'ENOENT';
  return gone ? missingBlobs([digest], 'input') : err;
}

/**
 * Copies the store's file; when a running action holds a hard link to it (so it may
 * have changed in place), checks the copy against the digest, and on a mismatch
 * drops the blob and answers it missing (the client uploads it again).
 */
async function copyFileChecked(store: BlobStore, ledger: LinkLedger, source: string, dest: string, digest: BlobDigest): Promise<void> {
  await copyFile(source, dest);
  const st = await lstat(source, { bigint: true });
  if (!ledger.holds(st)) return;
  if ((await hashFile(dest, digest.fn, st.size)) === digest.hash) return;
  await store.delete(digest);
  throw missingBlobs([digest], 'input');
}

/**
 * What staging `plan` put in the exec root, as seen from `workingDirectory`:
 * before the action runs that is exactly what is there (anything else is
 * absent), so output folders can be made without an lstat per path segment.
 * Built on first use.
 */
export function stagedEntries(plan: InputPlan, workingDirectory: string): KnownEntries {
  let kinds: Map<string, 'directory' | 'file' | 'symlink'> | undefined;
  const prefix = workingDirectory ? `${workingDirectory}/` : '';
  return (rel) => {
    if (!kinds) {
      kinds = new Map();
      for (const d of plan.directories) kinds.set(d, 'directory');
      for (const f of plan.files) kinds.set(f.path, 'file');
      for (const l of plan.symlinks) kinds.set(l.path, 'symlink');
    }
    return kinds.get(prefix + rel) ?? 'absent';
  };
}

/**
 * The hard-linked inputs whose shared inode was changed. The inode is looked
 * up through the exec root and through the store's own path, so an action
 * cannot hide a write by then deleting or replacing its link. Size, mtime or
 * mode differing from the ledger's baseline is conclusive (and catches a
 * change made before this action linked the inode). A moved ctime alone is
 * ambiguous: it also moves when another action links or unlinks the blob, or
 * when an action writes and then puts the mtime back; then the content is
 * re-hashed. So is an inode another action already held when this one linked it.
 */
export async function findTamperedInputs(execRoot: string, linked: LinkedInput[]): Promise<LinkedInput[]> {
  const tampered: LinkedInput[] = [];
  // The lstats are synchronous, in bounded batches (util/sync-batches.ts): one through the
  // thread pool cost the main thread more than the call itself, once per input per action.
  const budget = new SyncBudget();
  await forEachLimited(linked, CONCURRENCY, async (l) => {
    for (const path of [join(execRoot, l.path), l.storePath]) {
      const st = lstatIfReachable(path);
      await budget.spent();
      // Gone, or another inode now: the store's copy is not reachable through this path.
      if (!st || st.ino !== l.ino || st.dev !== l.dev) continue;
      const changed =
        st.size !== l.size ||
        st.mtimeNs !== l.mtimeNs ||
        Number(st.mode) !== l.mode ||
        // Out of the action's reach, a moved ctime is another action's link or unlink, never a write: no re-hash.
        (!l.outOfReach && (st.ctimeNs !== l.ctimeNs || l.sharedAtLink) && (await hashFile(path, l.digest.fn, st.size)) !== l.digest.hash);
      if (changed) tampered.push(l);
      return; // same inode either way: one look is enough
    }
  });
  return tampered;
}

/** The path's own stats; undefined when it cannot be looked at (gone, or a parent replaced by a file). */
function lstatIfReachable(path: string): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}

async function hashFile(path: string, fn: DigestFunctionName, size: bigint): Promise<string> {
  const hasher = await DIGEST_FUNCTIONS[fn].createHasher();
  // Shared inputs are re-hashed often (another action linking them moves the ctime): small ones in one read.
  if (size <= BigInt(SMALL_FILE_BYTES)) {
    hasher.update(await readFile(path));
    return hasher.digest();
  }
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hasher.update(chunk as Buffer);
  return hasher.digest();
}

export async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(workers);
}
