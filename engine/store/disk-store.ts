// The on-disk CAS. Blobs are read-only files named by digest in sharded folders
// (see cas-layout.ts); every write goes to a temp file on the same file system, is
// hashed while it streams, fsynced, and renamed into place only once verified, so
// nothing half-written is ever visible. Small blobs are verified in memory and made
// durable through the store's write-ahead log instead (logged-files.ts): one fdatasync
// for all the small blobs written at the same time rather than an fsync each; their
// files are written shortly after the acknowledgement, and until then reads are served
// from the log's memory and localPath writes the file first. Size is kept under a budget by an in-memory
// LRU index whose order is saved on the side (recency-file.ts) and rebuilt at start
// from file names alone.
import { existsSync } from 'node:fs';
import { mkdir, open, rename, stat, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock';
import { DIGEST_FUNCTIONS, SUPPORTED_DIGEST_FUNCTIONS, digestKey, emptyDigest, isEmptyBlob, type BlobDigest } from '../digest';
import { nullSink, type EventSink } from '../events/event-bus';
import { removeQuietly, removeTempFiles, uniqueTempPath, writeFully } from '../util/atomic-file';
import {
  BlobNotFoundError,
  DigestMismatchError,
  StoreFullError,
  readSpan,
  type BlobStore,
  type LargestBlob,
  type ReadRange,
  type StoreStats,
  type UploadSession,
} from './blob-store';
import { entryPath, parseDigestKey, scanEntries, shardDir } from './cas-layout';
import { LoggedFiles } from './logged-files';
import { UploadManager } from './disk-uploads';
import { CasIndex } from './cas-index';
import { RecencyJournal, loadRecency, rebuildIndex } from './recency-file';

/** Chunk size of read streams; the ByteStream service sends at most 1 MiB per message. */
export const READ_CHUNK_BYTES = 256 * 1024;

/**
 * Blobs up to this size are written through the write-ahead log (their bytes go to disk
 * twice, once in the log); larger ones to a temp file fsynced on its own, where the
 * fsync is small beside moving the bytes.
 */
export const LOGGED_BLOB_BYTES = 256 * 1024;

export interface DiskBlobStoreOptions {
  dir: string;
  budgetBytes: number;
  /** Receives blob.evicted. */
  events?: EventSink;
  clock?: Clock;
  /** Partial uploads untouched this long are deleted. Default 1 h. */
  staleUploadMs?: number;
  /** How often stale uploads are looked for. Default 10 min. */
  sweepIntervalMs?: number;
  /** Delay between a recency change and saving the order. Default 5 s. */
  indexSaveDelayMs?: number;
  /**
   * A partial upload idle this long counts as abandoned when space is short, and is
   * reclaimed before any blob is evicted. Default 60 s (a live client never pauses that long).
   */
  reclaimIdleUploadMs?: number;
  /** The quiet after which small blobs' files are written (logged-files.ts); for tests. */
  writeOutQuietMs?: number;
}

export class DiskBlobStore implements BlobStore {
  private readonly tmpDir: string;
  private readonly index = new CasIndex();
  private readonly journal: RecencyJournal;
  private readonly uploads: UploadManager;
  private readonly events: EventSink;
  private readonly clock: Clock;
  /** Per-key chains so a rename of a blob and the unlink of its evicted predecessor never cross. */
  private readonly keyLocks = new Map<string, Promise<void>>();
  /** Shard folders this process has made or seen made (see renameIntoShard). */
  private readonly shards = new Set<string>();
  private sweepTimer: { cancel(): void } | undefined;
  /** Small blobs' write path: durable through the log, one sync per batch. */
  private files!: LoggedFiles;
  private evictions = 0;
  private evictedBytes = 0;
  private closed = false;

  private constructor(
    private readonly dir: string,
    private budgetBytes: number,
    private readonly options: DiskBlobStoreOptions,
  ) {
    this.tmpDir = join(dir, 'tmp');
    this.events = options.events ?? nullSink;
    this.clock = options.clock ?? systemClock;
    this.journal = new RecencyJournal({
      file: join(dir, 'recency'),
      tempDir: this.tmpDir,
      index: this.index,
      clock: this.clock,
      delayMs: options.indexSaveDelayMs ?? 5_000,
    });
    this.uploads = new UploadManager({
      dir: join(dir, 'uploads'),
      clock: this.clock,
      staleMs: options.staleUploadMs ?? 60 * 60_000,
      install: (digest, path) => this.install(digest, path),
      installSmall: { maxBytes: LOGGED_BLOB_BYTES, install: (digest, data) => this.writeLogged(digest, data) },
      makeRoom: (bytes) => this.makeRoomForUpload(bytes),
    });
  }

  static async open(options: DiskBlobStoreOptions): Promise<DiskBlobStore> {
    if (!Number.isSafeInteger(options.budgetBytes) || options.budgetBytes <= 0) {
      throw new RangeError(`cache budget must be a positive number of bytes, got ${options.budgetBytes}`);
    }
    const store = new DiskBlobStore(options.dir, options.budgetBytes, options);
    await store.start();
    return store;
  }

  private async start(): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(join(this.dir, 'uploads'), { recursive: true });
    // Temp files of a crashed process were never visible; they are only garbage now.
    await removeTempFiles(this.tmpDir);
    // Replays small blobs an earlier process acknowledged, before the scan below indexes them.
    this.files = await LoggedFiles.open({ root: this.dir, walDir: join(this.dir, 'wal'), tempDir: this.tmpDir, mode: 0o444, writeOutQuietMs: this.options.writeOutQuietMs });
    for (const fn of SUPPORTED_DIGEST_FUNCTIONS) await this.ensureEmptyBlob(emptyDigest(fn));
    rebuildIndex(this.index, await scanEntries(this.dir), await loadRecency(join(this.dir, 'recency')));
    await this.uploads.sweep();
    await this.evictOverBudget(new Set());
    this.scheduleSweep();
  }

  /** The file path of a blob: where it is, or would be, stored. */
  pathOf(digest: BlobDigest): string {
    return entryPath(this.dir, digest);
  }

  /**
   * Presence is answered at once; the blobs found are marked recently used right after
   * (or before anything reads the recency order), so a call of 10,000 digests does not
   * wait for 10,000 reorderings of the index.
   */
  async findMissing(digests: BlobDigest[]): Promise<BlobDigest[]> {
    this.assertOpen();
    const missing: BlobDigest[] = [];
    const found: string[] = [];
    for (const d of digests) {
      // Looked up by hash, no key built per digest (see cas-index.ts).
      const key = this.index.lookup(d.fn, d.hash, d.size);
      if (key !== undefined) found.push(key);
      else if (!isEmptyBlob(d)) missing.push(d);
    }
    this.touchSoon(found);
    return missing;
  }

  /** Keys to mark recently used after this turn of the event loop. */
  private pendingTouches: string[][] = [];

  private touchSoon(keys: string[]): void {
    if (keys.length === 0) return;
    if (this.pendingTouches.push(keys) === 1) setImmediate(() => this.applyTouches());
  }

  /** Applies pending touches now: called before anything reads or acts on the recency order. */
  private applyTouches(): void {
    if (this.pendingTouches.length === 0) return;
    const batches = this.pendingTouches;
    this.pendingTouches = [];
    for (const keys of batches) for (const key of keys) this.index.touch(key);
    this.journal.changed();
  }

  async has(digest: BlobDigest): Promise<boolean> {
    this.assertOpen();
    if (isEmptyBlob(digest)) return true;
    const found = this.index.touch(digestKey(digest));
    this.journal.changed();
    return found;
  }

  async read(digest: BlobDigest, range: ReadRange = {}): Promise<Readable> {
    this.assertOpen();
    const { start: offset, end } = readSpan(digest, range);
    const held = this.unwrittenOf(digest);
    if (held) {
      this.touchOrThrow(digest);
      // Copies: the log's bytes must not change under it, and a reader may keep what it gets.
      const step = range.chunkBytes ?? READ_CHUNK_BYTES;
      const chunks: Buffer[] = [];
      for (let at = offset; at < end; at += step) chunks.push(Buffer.from(held.subarray(at, Math.min(end, at + step))));
      return Readable.from(chunks);
    }
    const fh = await this.openBlob(digest);
    if (end === offset) {
      await fh.close();
      return Readable.from([]);
    }
    // end is inclusive for fs streams.
    return fh.createReadStream({ start: offset, end: end - 1, highWaterMark: range.chunkBytes ?? READ_CHUNK_BYTES });
  }

  async readAll(digest: BlobDigest): Promise<Buffer> {
    this.assertOpen();
    const held = this.unwrittenOf(digest);
    if (held) {
      this.touchOrThrow(digest);
      return Buffer.from(held);
    }
    const fh = await this.openBlob(digest);
    try {
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  async write(digest: BlobDigest, source: AsyncIterable<Uint8Array> | Readable): Promise<void> {
    this.assertOpen();
    this.assertFits(digest);
    if (digest.size <= LOGGED_BLOB_BYTES) return this.writeLogged(digest, await receiveInMemory(digest, source));
    const temp = uniqueTempPath(this.tmpDir, digest.hash);
    try {
      await this.receive(digest, source, temp);
      await this.install(digest, temp);
    } catch (err) {
      // Only a failed write leaves its temp file behind: a successful one was renamed away.
      await removeQuietly(temp);
      throw err;
    }
  }

  async writeAll(digest: BlobDigest, data: Uint8Array): Promise<void> {
    await this.write(digest, (async function* () {
      yield data;
    })());
  }

  async openUpload(digest: BlobDigest, uploadId: string): Promise<UploadSession> {
    this.assertOpen();
    this.assertFits(digest);
    return this.uploads.open(digest, uploadId);
  }

  async uploadStatus(digest: BlobDigest, uploadId: string): Promise<number | undefined> {
    this.assertOpen();
    return this.uploads.status(digest, uploadId);
  }

  async delete(digest: BlobDigest): Promise<boolean> {
    this.assertOpen();
    if (isEmptyBlob(digest)) return false;
    const key = digestKey(digest);
    const existed = this.index.remove(key) !== undefined;
    this.journal.changed();
    await this.withKeyLock(key, () => this.removeFile(digest));
    return existed;
  }

  pin(digests: BlobDigest[]): () => void {
    const release = this.index.pin(digests.map(digestKey));
    return () => {
      release();
      // Pinned blobs may have held the store over budget; now they can go.
      if (!this.closed) void this.evictOverBudget(new Set());
    };
  }

  /**
   * Changes the budget at run time. A lower one evicts least recently used blobs
   * down to it before resolving (pinned blobs stay until released); stats() reports it at once.
   */
  async setBudget(bytes: number): Promise<void> {
    this.assertOpen();
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`cache budget must be a positive number of bytes, got ${bytes}`);
    this.budgetBytes = bytes;
    await this.evictOverBudget(new Set());
  }

  isPinned(digest: BlobDigest): boolean {
    return this.index.isPinned(digestKey(digest));
  }

  async localPath(digest: BlobDigest): Promise<string | undefined> {
    this.assertOpen();
    const path = this.pathOf(digest);
    if (isEmptyBlob(digest)) {
      await this.ensureEmptyBlob(digest);
      return path;
    }
    const key = digestKey(digest);
    if (!this.index.touch(key)) return undefined;
    this.journal.changed();
    // The caller links or opens the file itself: a blob acknowledged a moment ago gets it now.
    if (this.files.unwrittenCount > 0) this.files.writeOut(entryPath('', digest));
    // Synchronous: a look at a file whose folder the kernel has cached costs a few µs, and staging
    // asks once per input file, where a trip through libuv's pool cost far more (util/sync-batches.ts).
    if (existsSync(path)) return path;
    this.forget(key);
    return undefined;
  }

  stats(): StoreStats {
    return {
      bytes: this.index.totalWeight,
      blobs: this.index.count,
      budgetBytes: this.budgetBytes,
      evictions: this.evictions,
      evictedBytes: this.evictedBytes,
    };
  }

  /** From the in-memory index: no file is opened and nothing is touched. */
  largest(limit: number): LargestBlob[] {
    this.applyTouches();
    const out: LargestBlob[] = [];
    for (const e of this.index.heaviest(limit)) {
      const digest = parseDigestKey(e.key);
      if (digest) out.push({ digest, size: e.weight, lastUsedRank: e.rank });
    }
    return out;
  }

  /** Removes stale partial uploads now (also runs at start and periodically). */
  async sweepUploads(): Promise<number> {
    return this.uploads.sweep();
  }

  /** Saves the recency order now (also happens debounced and on close). */
  async flushIndex(): Promise<void> {
    await this.journal.flush();
  }

  /** Writes the files of small blobs acknowledged but not yet written (also happens shortly after each write, at checkpoints and on close). */
  async writeOutFiles(): Promise<void> {
    await this.files.writeOutAll();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sweepTimer?.cancel();
    await Promise.all(this.keyLocks.values());
    await this.uploads.close();
    await this.files.close();
    this.applyTouches(); // saved with the order below
    await this.journal.close();
  }

  /** Streams `source` into `temp`, hashing as it goes; rejects (leaving temp for the caller to delete) on mismatch. */
  private async receive(digest: BlobDigest, source: AsyncIterable<Uint8Array> | Readable, temp: string): Promise<void> {
    const hasher = await DIGEST_FUNCTIONS[digest.fn].createHasher();
    // Created read-only (this handle still writes): workers hard-link store files into
    // action inputs, which must not change them; saves an fchmod per blob.
    const fh = await open(temp, 'wx', 0o444);
    let size = 0;
    try {
      for await (const chunk of source as AsyncIterable<Uint8Array>) {
        size += chunk.byteLength;
        // Stop at the first byte past the declared size rather than swallow a runaway stream.
        if (size > digest.size) break;
        hasher.update(chunk);
        // Awaiting each write is the back-pressure: the source is not pulled faster than the disk takes it.
        await writeFully(fh, chunk);
      }
      checkReceived(digest, size, hasher.digest());
      await fh.sync();
    } catch (err) {
      throw diskFull(err, digest);
    } finally {
      await fh.close().catch(() => {});
    }
  }

  /** Logs a verified small blob, puts it in place, indexes it, and evicts down to the budget. */
  private async writeLogged(digest: BlobDigest, data: Uint8Array): Promise<void> {
    if (isEmptyBlob(digest)) return;
    const key = digestKey(digest);
    await this.withKeyLock(key, async () => {
      try {
        // A copy: the log holds it until the file is written, and the caller may reuse its buffer (often a view into a whole request).
        await this.files.put(entryPath('', digest), Buffer.from(data));
      } catch (err) {
        throw diskFull(err, digest);
      }
      this.index.add(key, digest.size);
    });
    this.journal.changed();
    await this.evictOverBudget(new Set([key]));
  }

  /** Renames a verified file into place, indexes it, and evicts down to the budget. */
  private async install(digest: BlobDigest, verifiedPath: string): Promise<void> {
    if (isEmptyBlob(digest)) return;
    this.assertFits(digest);
    const key = digestKey(digest);
    const target = this.pathOf(digest);
    await this.withKeyLock(key, async () => {
      try {
        await this.renameIntoShard(verifiedPath, digest);
      } catch (err) {
        // Windows refuses to replace a read-only file; an identical blob is already there, which is the goal.
        if (!(await stat(target).then(() => true, () => false))) throw diskFull(err, digest);
        await removeQuietly(verifiedPath);
      }
      this.index.add(key, digest.size);
    });
    this.journal.changed();
    // The space a new blob pushed out is freed before its write reports done.
    await this.evictOverBudget(new Set([key]));
  }

  /**
   * Renames into the blob's shard folder. Folders known to exist are not created again
   * (a mkdir per blob was a measurable share of a small write); one removed behind our
   * back shows up as ENOENT, is made again and the rename retried.
   */
  private async renameIntoShard(from: string, digest: BlobDigest): Promise<void> {
    const shard = shardDir(this.dir, digest);
    if (!this.shards.has(shard)) {
      await mkdir(shard, { recursive: true });
      this.shards.add(shard);
    }
    try {
      await rename(from, this.pathOf(digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.shards.delete(shard);
      await mkdir(shard, { recursive: true });
      this.shards.add(shard);
      await rename(from, this.pathOf(digest));
    }
  }

  /** Bytes of unfinished uploads; they count against the budget with the blobs. */
  partialUploadBytes(): number {
    return this.uploads.partialBytes;
  }

  /**
   * Makes the budget hold blobs + partial uploads + `extra` bytes if it can: abandoned
   * (idle) partial uploads are reclaimed first, then least recently used blobs are
   * unindexed. Returns the evicted blobs (their files still to remove) and the bytes
   * still over the budget (pinned blobs and active uploads cannot go).
   */
  private roomFor(extra: number, keep: ReadonlySet<string>): { victims: { key: string; weight: number }[]; over: number } {
    this.applyTouches(); // the least recently used must really be that
    const over = () => this.index.totalWeight + this.uploads.partialBytes + extra - this.budgetBytes;
    if (over() > 0) this.uploads.reclaim(over(), this.options.reclaimIdleUploadMs ?? 60_000);
    const victims = over() > 0 ? this.index.evictOver(Math.max(0, this.budgetBytes - this.uploads.partialBytes - extra), keep) : [];
    return { victims, over: over() };
  }

  /** Before an upload takes `bytes` more: room is made, or the bytes are refused (RESOURCE_EXHAUSTED). */
  private makeRoomForUpload(bytes: number): void {
    const { victims, over } = this.roomFor(bytes, new Set());
    void this.removeEvicted(victims);
    if (over > 0) {
      throw new StoreFullError(
        `the cache is full: ${this.index.totalWeight} bytes of blobs in use by running actions and ${this.uploads.partialBytes} bytes ` +
          `of uploads in progress fill the ${this.budgetBytes}-byte budget; retry when actions finish, or raise the cache size`,
      );
    }
  }

  /** Unindexes abandoned uploads and least recently used blobs beyond the budget at once; resolves when their files are gone. */
  private evictOverBudget(keep: ReadonlySet<string>): Promise<void> {
    return this.removeEvicted(this.roomFor(0, keep).victims);
  }

  private removeEvicted(victims: { key: string; weight: number }[]): Promise<void> {
    if (victims.length === 0) return Promise.resolve();
    this.journal.changed();
    const removals: Promise<void>[] = [];
    for (const { key, weight } of victims) {
      const digest = parseDigestKey(key);
      if (!digest) continue;
      this.evictions++;
      this.evictedBytes += weight;
      this.events.emit({ type: 'blob.evicted', at: this.clock.now(), digest });
      removals.push(this.withKeyLock(key, () => this.removeFile(digest)));
    }
    return Promise.all(removals).then(() => undefined);
  }

  /** A blob's file goes, and so do its bytes waiting to be written (else the write-out would bring the file back). */
  private removeFile(digest: BlobDigest): Promise<void> {
    this.files.discard(entryPath('', digest));
    return removeQuietly(this.pathOf(digest));
  }

  /** The bytes of a small blob acknowledged but whose file is not written yet, else undefined. */
  private unwrittenOf(digest: BlobDigest): Uint8Array | undefined {
    if (this.files.unwrittenCount === 0 || isEmptyBlob(digest)) return undefined;
    return this.files.unwritten(entryPath('', digest));
  }

  private touchOrThrow(digest: BlobDigest): void {
    if (!this.index.touch(digestKey(digest))) throw new BlobNotFoundError(digest);
    this.journal.changed();
  }

  private async openBlob(digest: BlobDigest) {
    const key = digestKey(digest);
    if (!isEmptyBlob(digest) && !this.index.touch(key)) throw new BlobNotFoundError(digest);
    this.journal.changed();
    try {
      return await open(this.pathOf(digest), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Deleted behind our back (a user cleaning up, a disk tool): forget it; Bazel will re-upload.
      if (isEmptyBlob(digest)) {
        await this.ensureEmptyBlob(digest);
        return open(this.pathOf(digest), 'r');
      }
      this.forget(key);
      throw new BlobNotFoundError(digest);
    }
  }

  private forget(key: string): void {
    this.index.remove(key);
    this.journal.changed();
  }

  private async ensureEmptyBlob(digest: BlobDigest): Promise<void> {
    const path = this.pathOf(digest);
    if (await stat(path).then(() => true, () => false)) return;
    await mkdir(shardDir(this.dir, digest), { recursive: true });
    const temp = uniqueTempPath(this.tmpDir, digest.hash);
    await writeFile(temp, new Uint8Array(0), { mode: 0o444 });
    await rename(temp, path).catch(async () => removeQuietly(temp));
  }

  private assertFits(digest: BlobDigest): void {
    if (digest.size > this.budgetBytes) {
      throw new StoreFullError(
        `blob ${digest.hash} of ${digest.size} bytes is larger than the whole cache budget (${this.budgetBytes} bytes); raise the cache size`,
      );
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the blob store is closed');
  }

  private withKeyLock(key: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.keyLocks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.keyLocks.set(key, tail);
    void tail.then(() => {
      if (this.keyLocks.get(key) === tail) this.keyLocks.delete(key);
    });
    return next;
  }

  private scheduleSweep(): void {
    this.sweepTimer = this.clock.setTimeout(() => {
      this.uploads
        .sweep()
        .catch((err) => console.error('kiln: sweeping stale uploads failed:', err))
        .finally(() => {
          if (!this.closed) this.scheduleSweep();
        });
    }, this.options.sweepIntervalMs ?? 10 * 60_000);
  }
}

/** Throws DigestMismatchError unless `size` bytes hashing to `actual` are the blob `digest` declares. */
function checkReceived(digest: BlobDigest, size: number, actual: string): void {
  if (size !== digest.size) {
    const got = size > digest.size ? `more than ${digest.size}` : String(size);
    throw new DigestMismatchError(`received ${got} bytes for a blob declared as ${digest.size} bytes (${digest.hash})`);
  }
  if (actual !== digest.hash) {
    throw new DigestMismatchError(`content hashes to ${actual}, not the declared ${digest.fn} ${digest.hash}`);
  }
}

/** Collects a small blob's bytes, hashing as they come; rejects on a size or hash mismatch. */
async function receiveInMemory(digest: BlobDigest, source: AsyncIterable<Uint8Array> | Readable): Promise<Uint8Array> {
  const hasher = await DIGEST_FUNCTIONS[digest.fn].createHasher();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of source as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > digest.size) break;
    hasher.update(chunk);
    chunks.push(chunk);
  }
  checkReceived(digest, size, hasher.digest());
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

function diskFull(err: unknown, digest: BlobDigest): unknown {
  if ((err as NodeJS.ErrnoException)?.code === 'ENOSPC') {
    return new StoreFullError(
      `no space left on the disk holding the cache to store blob ${digest.hash} (${digest.size} bytes); free disk space or lower the cache size, then retry`,
    );
  }
  return err;
}
