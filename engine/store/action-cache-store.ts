// The action cache: instance name + action digest → ActionResult. Instances never
// share entries. Bounded by entry count with least-recently-used eviction; the disk
// variant keeps one encoded ActionResult per file and rebuilds its index from the
// folder at start, with the order saved on the side. Entries are made durable through
// the store's write-ahead log (logged-files.ts): entries written at the same time share
// one fdatasync, and each file appears whole under its name.
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock';
import { digestKey, type BlobDigest } from '../digest';
import { reapi } from '../proto';
import { removeQuietly, removeTempFiles } from '../util/atomic-file';
import { entryPath, scanEntries } from './cas-layout';
import { LoggedFiles } from './logged-files';
import { LruIndex } from './lru-index';
import { RecencyJournal, loadRecency, rebuildIndex } from './recency-file';

export interface ActionCacheStore {
  get(instance: string, actionDigest: BlobDigest): Promise<reapi.ActionResult | undefined>;
  /**
   * The entry decoded (a fresh copy) beside the encoded bytes it was decoded from, so a
   * reader that changes nothing can answer with the bytes as they are instead of encoding
   * the result again. Stores without it are read with get().
   */
  getWithBytes?(instance: string, actionDigest: BlobDigest): Promise<StoredActionResult | undefined>;
  put(instance: string, actionDigest: BlobDigest, result: reapi.IActionResult): Promise<void>;
  delete(instance: string, actionDigest: BlobDigest): Promise<boolean>;
  /** Entries held, across all instances. */
  size(): number;
  close(): Promise<void>;
}

export interface StoredActionResult {
  result: reapi.ActionResult;
  /** Exactly the encoding of `result`; never to be modified. */
  bytes: Uint8Array;
}

export const DEFAULT_AC_MAX_ENTRIES = 100_000;

/**
 * A folder name for an instance: readable prefix + hash of the exact name, so names with
 * '/', '..' or differing only in case or punctuation never meet in one folder.
 */
export function instanceFolder(instance: string): string {
  const readable = instance.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 32);
  const hash = createHash('sha256').update(instance, 'utf8').digest('hex').slice(0, 16);
  return `${readable}~${hash}`;
}

function encodeResult(result: reapi.IActionResult): Uint8Array {
  return reapi.ActionResult.encode(reapi.ActionResult.create(result)).finish();
}

export class MemoryActionCacheStore implements ActionCacheStore {
  private entries = new Map<string, Uint8Array>();
  private index = new LruIndex();

  constructor(private readonly maxEntries = DEFAULT_AC_MAX_ENTRIES) {}

  async get(instance: string, actionDigest: BlobDigest): Promise<reapi.ActionResult | undefined> {
    return (await this.getWithBytes(instance, actionDigest))?.result;
  }

  async getWithBytes(instance: string, actionDigest: BlobDigest): Promise<StoredActionResult | undefined> {
    const key = memoryKey(instance, actionDigest);
    const bytes = this.entries.get(key);
    if (!bytes) return undefined;
    this.index.touch(key);
    // Stored encoded, so a caller mutating its result never changes the cache.
    return { result: reapi.ActionResult.decode(bytes), bytes };
  }

  async put(instance: string, actionDigest: BlobDigest, result: reapi.IActionResult): Promise<void> {
    const key = memoryKey(instance, actionDigest);
    this.entries.set(key, encodeResult(result));
    this.index.add(key, 1);
    for (const v of this.index.evictOver(this.maxEntries, new Set([key]))) this.entries.delete(v.key);
  }

  async delete(instance: string, actionDigest: BlobDigest): Promise<boolean> {
    const key = memoryKey(instance, actionDigest);
    this.index.remove(key);
    return this.entries.delete(key);
  }

  size(): number {
    return this.entries.size;
  }

  async close(): Promise<void> {}
}

/** An entry's path under the store's folder, from its index key ({folder}/{fn}/{hash}/{size}). */
function relativePath(key: string): string {
  const [folder, fn, hash, size] = key.split('/');
  return join('instances', folder!, fn!, hash!.slice(0, 2), `${hash}-${size}`);
}

function memoryKey(instance: string, d: BlobDigest): string {
  return `${instance}\u0000${digestKey(d)}`;
}

export interface DiskActionCacheOptions {
  dir: string;
  maxEntries?: number;
  clock?: Clock;
  /** Delay between a recency change and saving the order. Default 5 s. */
  indexSaveDelayMs?: number;
  /** Encoded results kept in memory as well, most recently used first. Default 32 MiB; 0 turns it off. */
  memoryCacheBytes?: number;
  /** The quiet after which entries' files are written (logged-files.ts); for tests. */
  writeOutQuietMs?: number;
}

export const DEFAULT_AC_MEMORY_CACHE_BYTES = 32 * 1024 * 1024;

/**
 * Recently used encoded results, so a hit costs no file system round trips. Entries are
 * copies of what is on disk: added by put and by reads, dropped whenever the disk entry
 * is deleted, evicted or found damaged.
 */
class EncodedResultCache {
  private entries = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private readonly budget: number) {}

  get(key: string): Uint8Array | undefined {
    const bytes = this.entries.get(key);
    if (bytes) {
      this.entries.delete(key);
      this.entries.set(key, bytes);
    }
    return bytes;
  }

  set(key: string, bytes: Uint8Array): void {
    this.delete(key);
    if (bytes.byteLength > this.budget / 8) return; // A few huge results must not flush all the others.
    this.entries.set(key, bytes);
    this.bytes += bytes.byteLength;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.budget) break;
      this.entries.delete(k);
      this.bytes -= v.byteLength;
    }
  }

  delete(key: string): void {
    const old = this.entries.get(key);
    if (!old) return;
    this.entries.delete(key);
    this.bytes -= old.byteLength;
  }
}

/** Layout: {dir}/instances/{instanceFolder}/{fn}/{hash[0..2]}/{hash}-{size}. */
export class DiskActionCacheStore implements ActionCacheStore {
  private readonly index = new LruIndex();
  private readonly journal: RecencyJournal;
  private readonly tmpDir: string;
  private readonly instancesDir: string;
  private readonly maxEntries: number;
  private readonly memory: EncodedResultCache;
  /** Bumped by every put, delete and eviction. */
  private changes = 0;
  /** instance name → folder name: hashing the name on every lookup is measurable. */
  private readonly folders = new Map<string, string>();
  /** Where entries are written: durable through the log. */
  private files!: LoggedFiles;

  private constructor(private readonly options: DiskActionCacheOptions) {
    this.memory = new EncodedResultCache(options.memoryCacheBytes ?? DEFAULT_AC_MEMORY_CACHE_BYTES);
    this.tmpDir = join(options.dir, 'tmp');
    this.instancesDir = join(options.dir, 'instances');
    this.maxEntries = options.maxEntries ?? DEFAULT_AC_MAX_ENTRIES;
    this.journal = new RecencyJournal({
      file: join(options.dir, 'recency'),
      tempDir: this.tmpDir,
      index: this.index,
      clock: options.clock ?? systemClock,
      delayMs: options.indexSaveDelayMs ?? 5_000,
    });
  }

  static async open(options: DiskActionCacheOptions): Promise<DiskActionCacheStore> {
    const max = options.maxEntries ?? DEFAULT_AC_MAX_ENTRIES;
    if (!Number.isSafeInteger(max) || max <= 0) {
      throw new RangeError(`action cache maxEntries must be a positive integer, got ${max}`);
    }
    const store = new DiskActionCacheStore(options);
    await store.start();
    return store;
  }

  private async start(): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(this.instancesDir, { recursive: true });
    await removeTempFiles(this.tmpDir);
    // Replays entries an earlier process acknowledged, before the scan below indexes them.
    this.files = await LoggedFiles.open({ root: this.options.dir, walDir: join(this.options.dir, 'wal'), tempDir: this.tmpDir, mode: 0o644, writeOutQuietMs: this.options.writeOutQuietMs });
    const present = new Map<string, number>();
    for (const folder of await readdir(this.instancesDir)) {
      for (const key of (await scanEntries(join(this.instancesDir, folder), { includeEmpty: true })).keys()) {
        present.set(`${folder}/${key}`, 1);
      }
    }
    rebuildIndex(this.index, present, await loadRecency(join(this.options.dir, 'recency')));
    this.evict(new Set());
  }

  async get(instance: string, actionDigest: BlobDigest): Promise<reapi.ActionResult | undefined> {
    return (await this.getWithBytes(instance, actionDigest))?.result;
  }

  async getWithBytes(instance: string, actionDigest: BlobDigest): Promise<StoredActionResult | undefined> {
    const key = this.keyOf(instance, actionDigest);
    if (!this.index.touch(key)) return undefined;
    this.journal.changed();
    const remembered = this.memory.get(key);
    // Decoded afresh each time, so a caller mutating its result never changes the cache.
    if (remembered) return { result: reapi.ActionResult.decode(remembered), bytes: remembered };
    // Acknowledged a moment ago and its file not written yet (or pushed out of the memory above meanwhile).
    const unwritten = this.files.unwritten(relativePath(key));
    if (unwritten) return { result: reapi.ActionResult.decode(unwritten), bytes: unwritten };
    const { path } = this.locate(instance, actionDigest);
    const changesBefore = this.changes;
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.forget(key);
      return undefined;
    }
    try {
      const result = reapi.ActionResult.decode(bytes);
      // Remember it unless a put, delete or eviction ran while the file was read (it may be stale).
      if (this.changes === changesBefore) this.memory.set(key, bytes);
      return { result, bytes };
    } catch {
      // A damaged entry is a miss: the action simply runs again and replaces it.
      this.forget(key);
      await removeQuietly(path);
      return undefined;
    }
  }

  async put(instance: string, actionDigest: BlobDigest, result: reapi.IActionResult): Promise<void> {
    const key = this.keyOf(instance, actionDigest);
    const bytes = encodeResult(result);
    this.changes++;
    await this.files.put(relativePath(key), bytes);
    this.changes++; // Before and after: a read overlapping the write in any way is not remembered.
    this.index.add(key, 1);
    this.memory.set(key, bytes);
    this.journal.changed();
    this.evict(new Set([key]));
  }

  async delete(instance: string, actionDigest: BlobDigest): Promise<boolean> {
    const key = this.keyOf(instance, actionDigest);
    const existed = this.index.remove(key) !== undefined;
    this.changes++;
    this.memory.delete(key);
    this.journal.changed();
    await this.files.remove(relativePath(key));
    return existed;
  }

  size(): number {
    return this.index.count;
  }

  /** Saves the recency order now (also happens debounced and on close). */
  async flushIndex(): Promise<void> {
    await this.journal.flush();
  }

  /** Writes the files of entries acknowledged but not yet written (also happens shortly after each put, at checkpoints and on close). */
  async writeOutFiles(): Promise<void> {
    await this.files.writeOutAll();
  }

  async close(): Promise<void> {
    await this.files.close();
    await this.journal.close();
  }

  private locate(instance: string, d: BlobDigest): { key: string; path: string } {
    const folder = this.folderOf(instance);
    return { key: `${folder}/${digestKey(d)}`, path: entryPath(join(this.instancesDir, folder), d) };
  }

  private keyOf(instance: string, d: BlobDigest): string {
    return `${this.folderOf(instance)}/${digestKey(d)}`;
  }

  private folderOf(instance: string): string {
    let folder = this.folders.get(instance);
    if (folder === undefined) {
      if (this.folders.size >= 1024) this.folders.clear(); // Bazel uses a handful; never grow without bound.
      folder = instanceFolder(instance);
      this.folders.set(instance, folder);
    }
    return folder;
  }

  private forget(key: string): void {
    this.index.remove(key);
    this.memory.delete(key);
    this.journal.changed();
  }

  private evict(keep: ReadonlySet<string>): void {
    const victims = this.index.evictOver(this.maxEntries, keep);
    if (victims.length === 0) return;
    this.journal.changed();
    this.changes++;
    for (const { key } of victims) {
      this.memory.delete(key);
      this.files.discard(relativePath(key)); // else its write-out would bring the file back
      void removeQuietly(this.pathOfKey(key));
    }
  }

  private pathOfKey(key: string): string {
    return join(this.options.dir, relativePath(key));
  }
}
