// Path walking that never goes through a symlink. The engine runs as root and
// the exec root is full of symlinks it did not choose (from the input tree, or
// made by the action), so every path the engine itself creates or reads under
// it is walked one segment at a time with lstat: a symlink or a file where a
// directory is expected stops the walk instead of being followed.
import { closeSync, constants, lstatSync, mkdirSync, openSync, readSync, type ReadStream, type Stats } from 'node:fs';
import { lstat, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { SyncBudget } from '../util/sync-batches';

/**
 * Streams a file, refusing (ELOOP) a symlink swapped in at the last moment.
 * The stream closes the file when it ends or is destroyed.
 */
export async function readStreamNoFollow(path: string): Promise<ReadStream> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  return handle.createReadStream({ highWaterMark: 1 << 20 });
}

/**
 * Reads a file expected to be `size` bytes into memory in one go, refusing a
 * symlink (ELOOP) like readStreamNoFollow. Reads up to one byte more, so a file
 * that grew shows as longer than expected.
 *
 * Synchronous calls: the file is small (SMALL_FILE_BYTES) and was just written, so
 * it is read from the page cache, and four calls through the thread pool (open, two
 * reads, close) cost more CPU than the calls themselves (util/sync-batches.ts).
 * O_NONBLOCK: a fifo swapped in for the file reads as empty instead of holding the
 * event loop until something writes to it.
 */
export async function readSmallNoFollow(path: string, size: number): Promise<Buffer> {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const buf = Buffer.allocUnsafe(size + 1);
    let filled = 0;
    while (filled < buf.length) {
      const bytesRead = readOrNothing(fd, buf, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buf.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}

/** readSync into buf from `at`, where what is not a file (a fifo: ESPIPE, EAGAIN) counts as ended. */
function readOrNothing(fd: number, buf: Buffer, at: number): number {
  try {
    return readSync(fd, buf, at, buf.length - at, at);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESPIPE' || code === 'EAGAIN') return 0;
    throw err;
  }
}

export class NotADirectoryOnPath extends Error {
  constructor(readonly segmentPath: string, readonly kind: 'symlink' | 'file') {
    super(`"${segmentPath}" is a ${kind}, not a directory`);
  }
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * What the caller already knows is at a path below `base` (because it made it
 * there itself and nothing else has run since), so no lstat is needed:
 * 'absent' when it knows nothing is there, undefined when it does not know.
 */
export type KnownEntries = (rel: string) => 'directory' | 'file' | 'symlink' | 'absent' | undefined;

/**
 * Creates base/rel and its missing parents (like mkdir -p) without following
 * symlinks. `rel` is a '/'-separated relative path already checked to have no
 * '.', '..' or empty segments. Throws NotADirectoryOnPath when a segment exists
 * and is not a real directory. Segments `known` answers for are not looked at.
 * A segment `known` says is absent is in a tree only the engine has touched, so
 * it is made synchronously (util/sync-batches.ts), `budget` yielding now and then.
 */
export async function mkdirsNoFollow(base: string, rel: string, known?: KnownEntries, budget?: SyncBudget): Promise<void> {
  let path = base;
  let relSoFar = '';
  for (const seg of rel.split('/')) {
    path = join(path, seg);
    relSoFar = relSoFar ? `${relSoFar}/${seg}` : seg;
    const kind = known?.(relSoFar);
    if (kind === 'directory') continue;
    if (kind && kind !== 'absent') throw new NotADirectoryOnPath(relSoFar, kind);
    if (kind === 'absent') {
      mkdirSync(path, { mode: 0o755 });
      await budget?.spent();
      continue;
    }
    if (kind === undefined) {
      const st = await lstatOrUndefined(path);
      if (st?.isDirectory()) continue;
      if (st) throw new NotADirectoryOnPath(relSoFar, st.isSymbolicLink() ? 'symlink' : 'file');
    }
    try {
      await mkdir(path, { mode: 0o755 });
    } catch (err) {
      // Lost a race with a sibling output creating the same folder: fine if it is a directory.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !(await lstat(path)).isDirectory()) throw err;
    }
  }
}

/**
 * lstat of base/rel, but only if every parent segment is a real directory:
 * undefined when the path does not exist or a parent is a symlink or a file.
 * The last segment itself is not followed either (it may be a symlink).
 *
 * One lstat per segment, synchronously: each is cheaper made directly than
 * through the thread pool (util/sync-batches.ts), and none of them leaves the
 * tree. A realpath of the parent would count the same calls in C, but it
 * follows the symlinks an action made, wherever they point (an automount or a
 * hung network file system would hold the event loop).
 */
export async function lstatNoFollow(base: string, rel: string): Promise<Stats | undefined> {
  if (rel === '') return lstatSync(base, { throwIfNoEntry: false });
  const segs = rel.split('/');
  let path = base;
  for (const seg of segs.slice(0, -1)) {
    path = join(path, seg);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st?.isDirectory()) return undefined;
  }
  return lstatSync(join(path, segs[segs.length - 1]), { throwIfNoEntry: false });
}
