// Small file-system primitives shared by the stores, settings, tokens and keys:
// unique temp names, atomic replace (temp + fsync + rename + directory fsync),
// and tolerant removal.
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm, readdir, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Suffix every temp file carries, so a start-up sweep can recognise leftovers of a crash. */
export const TEMP_SUFFIX = '.kiln-tmp';

/** A fresh path in `dir` that no other writer (in this or another process) will pick. */
export function uniqueTempPath(dir: string, hint: string): string {
  return join(dir, `${hint.slice(0, 40)}.${randomUUID()}${TEMP_SUFFIX}`);
}

/** Makes a rename in `dir` durable. Best effort: some platforms cannot open directories. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Windows (EPERM/EISDIR) and some network file systems: the rename is still atomic.
  } finally {
    await fh?.close().catch(() => {});
  }
}

export interface AtomicWriteOptions {
  /** Where the temp file goes; must be on the same file system as `path`. Defaults to its folder. */
  tempDir?: string;
  mode?: number;
}

/**
 * Replaces `path` with `data` so readers see either the old or the new content, never a mix,
 * and a crash never leaves a truncated file under the real name.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array | AsyncIterable<string | Uint8Array>,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const temp = uniqueTempPath(options.tempDir ?? dirname(path), basename(path));
  const fh = await open(temp, 'wx', options.mode ?? 0o644);
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) {
      await fh.writeFile(data);
    } else {
      for await (const part of data) await fh.write(typeof part === 'string' ? Buffer.from(part) : part);
    }
    await fh.sync();
    await fh.close();
    await rename(temp, path);
  } catch (err) {
    await fh.close().catch(() => {});
    await removeQuietly(temp);
    throw err;
  }
  await fsyncDir(dirname(path));
}

/** writeFileAtomic for callers with a synchronous API (token store, certificates, small settings). */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = uniqueTempPath(dirname(path), basename(path));
  const fd = openSync(temp, 'wx', mode);
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    for (let written = 0; written < bytes.byteLength; ) written += writeSync(fd, bytes, written);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(temp, path);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(temp, { force: true });
    throw err;
  }
}

/** Deletes a file; a file that is already gone is not an error. */
export async function removeQuietly(path: string): Promise<void> {
  await rm(path, { force: true }).catch(() => {});
}

/** Removes files ending in TEMP_SUFFIX directly inside `dir` (leftovers of a crash). Returns how many. */
export async function removeTempFiles(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.endsWith(TEMP_SUFFIX)) continue;
    await removeQuietly(join(dir, name));
    removed++;
  }
  return removed;
}

/** Writes all of `chunk` at `position` (or the current offset): a single write may be short. */
export async function writeFully(fh: FileHandle, chunk: Uint8Array, position?: number): Promise<void> {
  let written = 0;
  while (written < chunk.byteLength) {
    const at = position === undefined ? null : position + written;
    const r = await fh.write(chunk, written, chunk.byteLength - written, at);
    written += r.bytesWritten;
  }
}

/** Most buffers one writev takes (IOV_MAX on Linux and macOS). */
const MAX_IOVECS = 1024;

/** Writes `chunks` back to back starting at `position`, in as few system calls as it can. */
export async function writevFully(fh: FileHandle, chunks: readonly Uint8Array[], position: number): Promise<void> {
  let at = position;
  let rest = chunks.filter((c) => c.byteLength > 0);
  while (rest.length > 0) {
    const group = rest.slice(0, MAX_IOVECS);
    let { bytesWritten } = await fh.writev(group, at);
    at += bytesWritten;
    // A short write leaves the tail of the group (and everything after it) for the next round.
    let i = 0;
    while (i < group.length && bytesWritten >= group[i]!.byteLength) bytesWritten -= group[i++]!.byteLength;
    const partial = i < group.length && bytesWritten > 0 ? [group[i]!.subarray(bytesWritten)] : [];
    rest = [...partial, ...rest.slice(i + partial.length)];
  }
}
