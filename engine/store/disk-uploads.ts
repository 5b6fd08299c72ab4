// Resumable uploads for the disk CAS. Partial bytes live in {uploadsDir}/{name}.part,
// named by a sanitized upload id + the digest. A live session keeps its file handle
// and running hasher in memory, so resuming within a process costs nothing; after a
// restart the partial file is rehashed once. Sessions idle past `staleMs` are dropped.
//
// Appends need not wait for each other: chunks that arrive while a write is under way
// are gathered and written with one writev when it finishes, so a stream of small
// messages costs a few large system calls rather than one round trip to the thread
// pool per message. The hasher sees a chunk only once it is in the file, so file and
// hasher always agree, and a failed write cuts the file back to what was hashed.
// SHA-256 uploads larger than INLINE_HASH_BYTES are hashed on a worker thread that reads
// the file back (file-hasher.ts), partial files left by a restart included; smaller ones
// and other functions hash on this thread. Small blobs, once verified, go to the store as
// bytes (its write-ahead log makes them durable together) instead of an fsync each.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock';
import { DIGEST_FUNCTIONS, type BlobDigest, type Hasher } from '../digest';
import { removeQuietly, writevFully } from '../util/atomic-file';
import { DigestMismatchError, type UploadSession } from './blob-store';
import { FileHashWorker, type FileHashJob } from './file-hasher';

const PART_SUFFIX = '.part';

/**
 * Written bytes after which a datasync starts in the background, alongside further
 * writes. The fsync before the rename then only has the tail left to flush, rather than
 * every byte of a large blob while the client waits for its answer.
 */
const BACKGROUND_SYNC_BYTES = 32 * 1024 * 1024;

/**
 * SHA-256 uploads up to this size are hashed on this thread as their chunks are
 * written: for a small blob (most of what Bazel uploads: Actions, Commands,
 * sources) the worker's three messages and its open/read/close of the file
 * cost more than hashing the bytes here.
 */
export const INLINE_HASH_BYTES = 64 * 1024;

/** Moves a verified, read-only file into the store. Provided by the store. */
export type InstallFile = (digest: BlobDigest, path: string) => Promise<void>;
/** Stores a verified blob from its bytes. Provided by the store. */
export type InstallBytes = (digest: BlobDigest, data: Uint8Array) => Promise<void>;

/** Chunks written together by one writev; settles when they are in the file (or failed to get there). */
interface Batch {
  chunks: Uint8Array[];
  bytes: number;
  promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

interface LiveUpload {
  key: string;
  digest: BlobDigest;
  path: string;
  fh: FileHandle;
  /** Exactly one of these: the worker reading the file back, or a hasher fed the written chunks. */
  fileHash: FileHashJob | undefined;
  hasher: Hasher | undefined;
  /** Bytes in the file and through the hasher. */
  size: number;
  /** Bytes accepted by append: `size` plus those being written or waiting to be. */
  received: number;
  /** The write under way, if any. */
  writing: Promise<void> | undefined;
  /** Chunks waiting for `writing` to finish. */
  next: Batch | undefined;
  /** Bytes written since the last background datasync started. */
  unsynced: number;
  /** The background datasync under way, if any; its failure is left for the final fsync to report. */
  syncing: Promise<void> | undefined;
  lastActivity: number;
  /** Serializes commit/abort of one upload behind each other. */
  queue: Promise<unknown>;
  done: boolean;
}

export interface UploadManagerOptions {
  dir: string;
  clock: Clock;
  staleMs: number;
  install: InstallFile;
  /**
   * With it, a blob of at most `maxBytes` is committed by handing its bytes to the
   * store (which makes small writes durable together, in its write-ahead log) rather
   * than by an fsync of the partial file and its rename.
   */
  installSmall?: { maxBytes: number; install: InstallBytes };
  /**
   * Called before an append is accepted, with the bytes it adds: partial uploads
   * count against the store's budget, so the store makes room (evicting blobs,
   * reclaiming idle uploads) or throws StoreFullError to refuse the bytes.
   */
  makeRoom?: (bytes: number) => void;
}

export class UploadManager {
  private live = new Map<string, Promise<LiveUpload>>();
  /** Live uploads once opened, for reclaiming them synchronously. */
  private readonly opened = new Map<string, LiveUpload>();
  /** Partial files on disk no session has open (left by a restart or a dropped client): name to size. */
  private readonly dormant = new Map<string, number>();
  /** Bytes held by partial uploads: accepted by live sessions plus dormant files. */
  private partial = 0;
  private readonly hashWorker = new FileHashWorker();

  constructor(private readonly o: UploadManagerOptions) {}

  /** Bytes partial uploads hold on disk (or are about to); they count against the store's budget. */
  get partialBytes(): number {
    return this.partial;
  }

  /**
   * Frees at least `bytes` of partial uploads if it can, under pressure: dormant files
   * first, then live uploads idle for `idleMs` or more, least recently active first.
   * Their clients find the upload gone (QueryWriteStatus: 0) and start it again.
   * Returns the bytes freed; the files go in the background.
   */
  reclaim(bytes: number, idleMs: number): number {
    let freed = 0;
    for (const [name, size] of this.dormant) {
      if (freed >= bytes) return freed;
      this.dormant.delete(name);
      this.partial -= size;
      freed += size;
      void removeQuietly(join(this.o.dir, name));
    }
    const cutoff = this.o.clock.now() - idleMs;
    const idle = [...this.opened.values()].filter((u) => !u.done && u.lastActivity <= cutoff).sort((a, b) => a.lastActivity - b.lastActivity);
    for (const upload of idle) {
      if (freed >= bytes) break;
      freed += upload.received;
      void this.finish(upload, true);
    }
    return freed;
  }

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
      pending.then((upload) => this.opened.set(key, upload), () => undefined);
    }
    const upload = await pending;
    upload.lastActivity = this.o.clock.now();
    return this.session(upload);
  }

  async status(digest: BlobDigest, uploadId: string): Promise<number | undefined> {
    const key = this.partName(digest, uploadId);
    const pending = this.live.get(key);
    if (pending) {
      const upload = await pending;
      // What is accepted now will be in the file in a moment: report it once it is (not
      // whatever a still-running stream adds meanwhile; a failed write ends the wait too).
      const accepted = upload.received;
      while (upload.size < accepted && upload.writing) await upload.writing;
      return upload.size;
    }
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
      if (this.live.has(name)) continue; // opened while we looked
      this.forgetDormant(name);
      if (info && info.mtimeMs < cutoff) {
        await removeQuietly(path);
        removed++;
      } else if (info) {
        this.dormant.set(name, info.size);
        this.partial += info.size;
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
        await settle(upload); // Accepted bytes still go to the file: the upload stays resumable.
        await upload.fh.close().catch(() => {});
      }
    }
    this.live.clear();
    await this.hashWorker.close();
  }

  private forgetDormant(name: string): void {
    const size = this.dormant.get(name);
    if (size === undefined) return;
    this.dormant.delete(name);
    this.partial -= size;
  }

  private async start(key: string, digest: BlobDigest): Promise<LiveUpload> {
    this.forgetDormant(key); // counted again below, as the live upload's bytes
    const path = join(this.o.dir, key);
    const { fh, created } = await openPart(path);
    let fileHash: FileHashJob | undefined;
    try {
      let hasher: Hasher | undefined;
      let size: number;
      if (digest.fn === 'sha256' && digest.size > INLINE_HASH_BYTES) {
        size = created ? 0 : (await fh.stat()).size;
        if (size > digest.size) {
          await fh.truncate(0); // More bytes than the blob can have: unusable, start over.
          size = 0;
        }
        fileHash = this.hashWorker.open(path);
        fileHash.advance(size); // A partial file from before a restart is hashed on the worker too.
      } else if (created) {
        hasher = await DIGEST_FUNCTIONS[digest.fn].createHasher();
        size = 0;
      } else {
        ({ hasher, size } = await rehash(fh, digest));
        if (size > digest.size) {
          await fh.truncate(0);
          hasher = await DIGEST_FUNCTIONS[digest.fn].createHasher();
          size = 0;
        }
      }
      this.partial += size;
      return {
        key,
        digest,
        path,
        fh,
        fileHash,
        hasher,
        size,
        received: size,
        writing: undefined,
        next: undefined,
        unsynced: 0,
        syncing: undefined,
        lastActivity: this.o.clock.now(),
        queue: Promise.resolve(),
        done: false,
      };
    } catch (err) {
      fileHash?.close();
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
        return upload.received;
      },
      append: (chunk) => this.append(upload, chunk, run),
      commit: () => run(() => this.commit(upload)),
      abort: () => (upload.done ? Promise.resolve() : run(() => this.finish(upload, true))),
    };
  }

  /** Queues `chunk` behind those already accepted; resolves once it is written. */
  private append(upload: LiveUpload, chunk: Uint8Array, run: <T>(fn: () => Promise<T>) => Promise<T>): Promise<void> {
    if (upload.done) return Promise.reject(new Error(`upload ${upload.key} is already committed or aborted`));
    if (upload.received + chunk.byteLength > upload.digest.size) {
      const message = `upload exceeds the declared size: ${upload.received + chunk.byteLength} bytes for a blob of ${upload.digest.size} bytes (${upload.digest.hash})`;
      return run(() => this.finish(upload, true)).then(() => {
        throw new DigestMismatchError(message);
      });
    }
    upload.lastActivity = this.o.clock.now();
    if (chunk.byteLength === 0) return upload.next?.promise ?? upload.writing ?? Promise.resolve();
    try {
      this.o.makeRoom?.(chunk.byteLength);
    } catch (err) {
      // No room: this upload's own bytes go too, or a burst of refused uploads would hold the
      // space they were refused for. Its client restarts it (QueryWriteStatus answers 0).
      return run(() => this.finish(upload, true)).then(() => {
        throw err;
      });
    }
    this.partial += chunk.byteLength;
    const batch = (upload.next ??= newBatch());
    batch.chunks.push(chunk);
    batch.bytes += chunk.byteLength;
    upload.received += chunk.byteLength;
    this.pump(upload);
    return batch.promise;
  }

  /** Starts writing the waiting batch unless a write is already under way (it starts the next one when it ends). */
  private pump(upload: LiveUpload): void {
    if (upload.writing || !upload.next) return;
    const batch = upload.next;
    upload.next = undefined;
    upload.writing = this.writeBatch(upload, batch).finally(() => {
      upload.writing = undefined;
      this.pump(upload);
    });
  }

  private async writeBatch(upload: LiveUpload, batch: Batch): Promise<void> {
    try {
      await writevFully(upload.fh, batch.chunks, upload.size);
    } catch (err) {
      // Cut off whatever part of the batch landed, so file and hasher agree; chunks queued
      // behind it cannot land past the gap, so they fail too and the upload resumes from `size`.
      await upload.fh.truncate(upload.size).catch(() => {});
      const later = upload.next;
      upload.next = undefined;
      this.partial -= upload.received - upload.size;
      upload.received = upload.size;
      batch.reject(err);
      later?.reject(err);
      return;
    }
    if (upload.hasher) for (const chunk of batch.chunks) upload.hasher.update(chunk);
    upload.size += batch.bytes;
    upload.fileHash?.advance(upload.size);
    upload.unsynced += batch.bytes;
    if (upload.unsynced >= BACKGROUND_SYNC_BYTES && !upload.syncing) {
      upload.unsynced = 0;
      const sync: Promise<void> = upload.fh.datasync().then(
        () => {
          if (upload.syncing === sync) upload.syncing = undefined;
        },
        () => {
          if (upload.syncing === sync) upload.syncing = undefined;
        },
      );
      upload.syncing = sync;
    }
    batch.resolve();
  }

  private async commit(upload: LiveUpload): Promise<void> {
    await settle(upload);
    const { digest } = upload;
    if (upload.size !== digest.size) {
      await this.finish(upload, true);
      throw new DigestMismatchError(`received ${upload.size} bytes for a blob declared as ${digest.size} bytes (${digest.hash})`);
    }
    let actual: string;
    try {
      actual = upload.fileHash ? await upload.fileHash.digest(upload.size) : upload.hasher!.digest();
    } catch (err) {
      await this.finish(upload, false); // Not verified, not lost: the next open hashes the file afresh.
      throw err;
    }
    if (actual !== digest.hash) {
      await this.finish(upload, true);
      throw new DigestMismatchError(`content hashes to ${actual}, not the declared ${digest.fn} ${digest.hash}`);
    }
    const small = this.o.installSmall;
    if (small && digest.size <= small.maxBytes) {
      const data = await readAll(upload.fh, digest.size);
      await this.finish(upload, false);
      try {
        await small.install(digest, data);
      } finally {
        await removeQuietly(upload.path);
      }
      return;
    }
    await upload.fh.sync();
    await upload.fh.chmod(0o444);
    await this.finish(upload, false);
    try {
      await this.o.install(digest, upload.path);
    } catch (err) {
      // Installed, the file was renamed away: only a failed install leaves it to remove.
      await removeQuietly(upload.path);
      throw err;
    }
  }

  private async finish(upload: LiveUpload, deleteFile: boolean): Promise<void> {
    if (upload.done) return;
    upload.done = true;
    this.live.delete(upload.key);
    this.opened.delete(upload.key);
    // A committed upload's bytes now count as a blob; an aborted one's are gone; a file
    // kept for resuming after close() is dormant, and counted again by the next start.
    this.partial -= upload.received;
    if (deleteFile) {
      // Nothing waiting is worth writing any more; the write under way must end before the close.
      const dropped = upload.next;
      upload.next = undefined;
      dropped?.reject(new Error(`upload ${upload.key} was aborted`));
    }
    await settle(upload);
    upload.fileHash?.close();
    await upload.fh.close().catch(() => {});
    if (deleteFile) await removeQuietly(upload.path);
  }
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // Whoever appended sees the failure; nobody listening is not a crash.
  return { chunks: [], bytes: 0, promise, resolve, reject };
}

/** Resolves when nothing of `upload` is being written, waiting to be, or being synced in the background. */
async function settle(upload: LiveUpload): Promise<void> {
  while (upload.writing || upload.syncing) await (upload.writing ?? upload.syncing);
}

/**
 * Opens an upload's partial file for writing at any position: one open that
 * creates it when it is new (most uploads), else the existing file (a resumed
 * upload). 'a' would ignore write positions on Linux; 'r+' does not create.
 */
async function openPart(path: string): Promise<{ fh: FileHandle; created: boolean }> {
  try {
    return { fh: await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL), created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { fh: await open(path, 'r+'), created: false };
  }
}

/** The first `size` bytes of a file (a small upload's, just verified). */
async function readAll(fh: FileHandle, size: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  for (let at = 0; at < size; ) {
    const { bytesRead } = await fh.read(buf, at, size - at, at);
    if (bytesRead === 0) throw new Error(`upload file ended at ${at} of ${size} bytes`);
    at += bytesRead;
  }
  return buf;
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
