// Resumable uploads for the disk CAS. Partial bytes live in {uploadsDir}/{name}.part,
// named by a sanitized upload id + the digest. A live session keeps its file handle
// and running hasher in memory, so resuming within a process costs nothing; after a
// restart the partial file is rehashed once. Sessions idle past `staleMs` are dropped.
import { createHash } from 'node:crypto';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock';
import { DIGEST_FUNCTIONS, type BlobDigest, type Hasher } from '../digest';
import { removeQuietly, writeFully } from './atomic-file';
import { DigestMismatchError, type UploadSession } from './blob-store';

const PART_SUFFIX = '.part';

/** Moves a verified, read-only file into the store. Provided by the store. */
export type InstallFile = (digest: BlobDigest, path: string) => Promise<void>;

interface LiveUpload {
  key: string;
  digest: BlobDigest;
  path: string;
  fh: FileHandle;
  hasher: Hasher;
  size: number;
  lastActivity: number;
  /** Serializes appends/commit/abort of one upload: interleaved writes would corrupt it. */
  queue: Promise<unknown>;
  done: boolean;
}

export interface UploadManagerOptions {
  dir: string;
  clock: Clock;
  staleMs: number;
  install: InstallFile;
}

export class UploadManager {
  private live = new Map<string, Promise<LiveUpload>>();

  constructor(private readonly o: UploadManagerOptions) {}

  /** A file name that no upload id can use to escape the folder or collide with another id. */
  partName(digest: BlobDigest, uploadId: string): string {
    const readable = uploadId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48);
    const idHash = createHash('sha256').update(uploadId).digest('hex').slice(0, 16);
    return `${readable}.${idHash}.${digest.fn}.${digest.hash}.${digest.size}${PART_SUFFIX}`;
  }

  async open(digest: BlobDigest, uploadId: string): Promise<UploadSession> {
    const key = this.partName(digest, uploadId);
    let pending = this.live.get(key);
    if (!pending) {
      pending = this.start(key, digest);
      this.live.set(key, pending);
      pending.catch(() => this.live.delete(key));
    }
    const upload = await pending;
    upload.lastActivity = this.o.clock.now();
    return this.session(upload);
  }

  async status(digest: BlobDigest, uploadId: string): Promise<number | undefined> {
    const key = this.partName(digest, uploadId);
    const pending = this.live.get(key);
    if (pending) return (await pending).size;
    try {
      return (await stat(join(this.o.dir, key))).size;
    } catch {
      return undefined;
    }
  }

  /** Drops idle live sessions and partial files not modified within `staleMs`. */
  async sweep(): Promise<number> {
    const cutoff = this.o.clock.now() - this.o.staleMs;
    let removed = 0;
    for (const pending of this.live.values()) {
      const upload = await pending.catch(() => undefined);
      if (upload && upload.lastActivity < cutoff) {
        await this.finish(upload, true);
        removed++;
      }
    }
    let names: string[] = [];
    try {
      names = await readdir(this.o.dir);
    } catch {
      return removed;
    }
    for (const name of names) {
      if (!name.endsWith(PART_SUFFIX) || this.live.has(name)) continue;
      const path = join(this.o.dir, name);
      const info = await stat(path).catch(() => undefined);
      if (info && info.mtimeMs < cutoff) {
        await removeQuietly(path);
        removed++;
      }
    }
    return removed;
  }

  /** Closes file handles; partial files stay so uploads can resume after a restart. */
  async close(): Promise<void> {
    for (const pending of this.live.values()) {
      const upload = await pending.catch(() => undefined);
      if (upload && !upload.done) {
        await upload.queue.catch(() => {});
        upload.done = true;
        await upload.fh.close().catch(() => {});
      }
    }
    this.live.clear();
  }

  private async start(key: string, digest: BlobDigest): Promise<LiveUpload> {
    const path = join(this.o.dir, key);
    // 'a' would ignore write positions on Linux; 'r+' on a file known to exist honours them.
    await (await open(path, 'a')).close();
    const fh = await open(path, 'r+');
    try {
      let { hasher, size } = await rehash(fh, digest);
      if (size > digest.size) {
        // More bytes than the blob can have: unusable, start over.
        await fh.truncate(0);
        hasher = await DIGEST_FUNCTIONS[digest.fn].createHasher();
        size = 0;
      }
      return { key, digest, path, fh, hasher, size, lastActivity: this.o.clock.now(), queue: Promise.resolve(), done: false };
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
  }

  private session(upload: LiveUpload): UploadSession {
    const run = <T>(fn: () => Promise<T>): Promise<T> => {
      const next = upload.queue.then(() => {
        if (upload.done) throw new Error(`upload ${upload.key} is already committed or aborted`);
        upload.lastActivity = this.o.clock.now();
        return fn();
      });
      upload.queue = next.catch(() => {});
      return next;
    };
    return {
      get committedSize() {
        return upload.size;
      },
      append: (chunk) => run(() => this.append(upload, chunk)),
      commit: () => run(() => this.commit(upload)),
      abort: () => (upload.done ? Promise.resolve() : run(() => this.finish(upload, true))),
    };
  }

  private async append(upload: LiveUpload, chunk: Uint8Array): Promise<void> {
    if (upload.size + chunk.byteLength > upload.digest.size) {
      await this.finish(upload, true);
      throw new DigestMismatchError(
        `upload exceeds the declared size: ${upload.size + chunk.byteLength} bytes for a blob of ${upload.digest.size} bytes (${upload.digest.hash})`,
      );
    }
    try {
      await writeFully(upload.fh, chunk, upload.size);
    } catch (err) {
      // Cut off whatever part of the chunk landed, so file and hasher agree.
      await upload.fh.truncate(upload.size).catch(() => {});
      throw err;
    }
    upload.hasher.update(chunk);
    upload.size += chunk.byteLength;
  }

  private async commit(upload: LiveUpload): Promise<void> {
    const { digest } = upload;
    if (upload.size !== digest.size) {
      await this.finish(upload, true);
      throw new DigestMismatchError(`received ${upload.size} bytes for a blob declared as ${digest.size} bytes (${digest.hash})`);
    }
    const actual = upload.hasher.digest();
    if (actual !== digest.hash) {
      await this.finish(upload, true);
      throw new DigestMismatchError(`content hashes to ${actual}, not the declared ${digest.fn} ${digest.hash}`);
    }
    await upload.fh.sync();
    await upload.fh.chmod(0o444);
    await this.finish(upload, false);
    try {
      await this.o.install(digest, upload.path);
    } finally {
      await removeQuietly(upload.path);
    }
  }

  private async finish(upload: LiveUpload, deleteFile: boolean): Promise<void> {
    if (upload.done) return;
    upload.done = true;
    this.live.delete(upload.key);
    await upload.fh.close().catch(() => {});
    if (deleteFile) await removeQuietly(upload.path);
  }
}

/** Feeds a partial file left by an earlier process through a fresh hasher (its state is gone). */
async function rehash(fh: FileHandle, digest: BlobDigest): Promise<{ hasher: Hasher; size: number }> {
  const hasher = await DIGEST_FUNCTIONS[digest.fn].createHasher();
  const buf = Buffer.allocUnsafe(1 << 20);
  let size = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, size);
    if (bytesRead === 0) break;
    hasher.update(buf.subarray(0, bytesRead));
    size += bytesRead;
  }
  return { hasher, size };
}
