// Executable inputs, hard-linked like the others. The store keeps each blob
// once, read-only and not executable (0444), and a hard link shares its
// inode's mode, so an executable input used to be copied into every exec root
// that needed it: two opens, a copy, a chmod and their thread-pool round trips
// for each, and every genrule has one (Bazel's genrule-setup.sh). Instead, the
// first action that needs a blob as an executable makes one read-only
// executable copy (0555) here, and every later one links it. The folder lives
// in the build folder (the same file system as the exec roots), closed to
// everyone but Kiln, and is emptied at start and on close.
import { chmod, mkdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { digestKey, type BlobDigest } from '../digest';
import { uniqueTempPath } from '../util/atomic-file';

/** Copies kept at most; the least recently linked goes first (links already made keep their inode). */
export const MAX_EXECUTABLE_COPIES = 4096;

/**
 * Makes `dest` a copy of the blob, checked where the store's file may have been
 * changed through a running action's link (stage-inputs.ts copyFileChecked);
 * throws what staging throws for a missing blob.
 */
export type CopyBlob = (digest: BlobDigest, dest: string) => Promise<void>;

export class ExecutableCopies {
  /** Ready copies by digest key, least recently used first. */
  private readonly ready = new Map<string, string>();
  /** Copies being made: concurrent actions needing the same blob share one. */
  private readonly making = new Map<string, Promise<string>>();
  private folderMade: Promise<void> | undefined;

  constructor(
    private readonly dir: string,
    private readonly maxCopies = MAX_EXECUTABLE_COPIES,
  ) {}

  /** Path of a read-only executable copy of the blob, made with `copy` the first time. */
  async pathFor(digest: BlobDigest, copy: CopyBlob): Promise<string> {
    const key = digestKey(digest);
    const path = this.ready.get(key);
    if (path !== undefined) {
      this.ready.delete(key); // to the recent end
      this.ready.set(key, path);
      return path;
    }
    let made = this.making.get(key);
    if (!made) {
      made = this.make(key, digest, copy).finally(() => this.making.delete(key));
      this.making.set(key, made);
    }
    return made;
  }

  /** Forgets and removes the copy of `digest` (an action changed it through its link). */
  async drop(digest: BlobDigest): Promise<void> {
    const key = digestKey(digest);
    const path = this.ready.get(key);
    if (path === undefined) return;
    this.ready.delete(key);
    await unlink(path).catch(() => {});
  }

  /** Removes every copy and the folder (links in exec roots keep their inodes). */
  async clear(): Promise<void> {
    this.ready.clear();
    await this.folderMade?.catch(() => {});
    await rm(this.dir, { recursive: true, force: true });
  }

  private async make(key: string, digest: BlobDigest, copy: CopyBlob): Promise<string> {
    this.folderMade ??= mkdir(this.dir, { recursive: true, mode: 0o700 }).then(() => undefined);
    await this.folderMade;
    const path = join(this.dir, key.replace(/[^A-Za-z0-9._-]/g, '_'));
    // Made aside and renamed in: an action never links a half-written or still writable copy.
    const temp = uniqueTempPath(this.dir, 'x');
    try {
      await copy(digest, temp);
      await chmod(temp, 0o555);
      await rename(temp, path);
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw err;
    }
    this.ready.set(key, path);
    while (this.ready.size > this.maxCopies) {
      const [oldKey, oldPath] = this.ready.entries().next().value as [string, string];
      this.ready.delete(oldKey);
      await unlink(oldPath).catch(() => {});
    }
    return path;
  }
}
