// A BlobStore decorator that keeps recently written, uploaded or read small blobs in
// memory, so whole-blob reads of them (the Action, Command and Directory protos every
// Execute reads, BatchReadBlobs) cost no file system round trips: a disk readAll is
// an open, a stat, a read and a close, each a trip through the thread pool.
//
// Presence stays the wrapped store's business: a hit still asks it (an in-memory
// index lookup in the disk store), which also keeps the blob's recency there, so a
// blob the store evicted or deleted is never served from here.
import { Readable } from 'node:stream';
import { digestKey, type BlobDigest } from '../digest';
import { BlobNotFoundError, readSpan, type BlobStore, type ReadRange, type UploadSession } from './blob-store';
import { BlobStoreDecorator } from './blob-store-decorator';

export interface SmallBlobCacheOptions {
  /** Blobs up to this size are kept. Default 64 KiB. */
  maxBlobBytes?: number;
  /** Bytes kept in all, least recently used dropped first. Default 32 MiB. */
  budgetBytes?: number;
}

export const DEFAULT_SMALL_BLOB_BYTES = 64 * 1024;
export const DEFAULT_SMALL_BLOB_CACHE_BYTES = 32 * 1024 * 1024;

export class SmallBlobCache extends BlobStoreDecorator {
  /** digestKey → bytes; Map order is recency, least recently used first. */
  private readonly kept = new Map<string, Buffer>();
  private keptBytes = 0;
  private readonly maxBlobBytes: number;
  private readonly budgetBytes: number;

  constructor(
    inner: BlobStore,
    options: SmallBlobCacheOptions = {},
  ) {
    super(inner);
    this.maxBlobBytes = options.maxBlobBytes ?? DEFAULT_SMALL_BLOB_BYTES;
    this.budgetBytes = options.budgetBytes ?? DEFAULT_SMALL_BLOB_CACHE_BYTES;
  }

  override async read(digest: BlobDigest, range?: ReadRange): Promise<Readable> {
    const bytes = await this.hit(digest);
    if (!bytes) return this.inner.read(digest, range);
    const { start, end } = readSpan(digest, range);
    return Readable.from(end > start ? [Buffer.from(bytes.subarray(start, end))] : []);
  }

  /** Callers own what they get (they may change it), so hits are copies: a memcpy of a small blob. */
  override async readAll(digest: BlobDigest): Promise<Buffer> {
    const bytes = await this.hit(digest);
    if (bytes) return Buffer.from(bytes);
    const data = await this.inner.readAll(digest);
    if (data.byteLength <= this.maxBlobBytes) this.keep(digest, Buffer.from(data));
    return data;
  }

  override async writeAll(digest: BlobDigest, data: Uint8Array): Promise<void> {
    await this.inner.writeAll(digest, data);
    // A copy: `data` is often a view into a whole gRPC request, which must not stay alive for it.
    if (data.byteLength <= this.maxBlobBytes) this.keep(digest, Buffer.from(data));
  }

  /**
   * A small upload started from its first byte is kept once committed (the wrapped
   * store verified it): Bazel 4 sends every Action and Command by ByteStream, and
   * Execute reads both right after. Resumed or large uploads pass straight through.
   */
  override async openUpload(digest: BlobDigest, uploadId: string): Promise<UploadSession> {
    const session = await this.inner.openUpload(digest, uploadId);
    if (digest.size > this.maxBlobBytes || session.committedSize !== 0) return session;
    const chunks: Buffer[] = [];
    let usable = true;
    return {
      get committedSize() {
        return session.committedSize;
      },
      append: (chunk) => {
        // A copy, in order of arrival (the order the store writes them); a refused append spoils it.
        chunks.push(Buffer.from(chunk));
        return session.append(chunk).catch((err) => {
          usable = false;
          throw err;
        });
      },
      commit: async () => {
        await session.commit();
        if (usable) this.keep(digest, Buffer.concat(chunks));
      },
      abort: () => session.abort(),
    };
  }

  override async delete(digest: BlobDigest): Promise<boolean> {
    this.drop(digestKey(digest));
    return this.inner.delete(digest);
  }

  override close(): Promise<void> {
    this.kept.clear();
    this.keptBytes = 0;
    return this.inner.close();
  }

  /** The kept bytes of a blob the wrapped store still holds (touching it there), else undefined. */
  private async hit(digest: BlobDigest): Promise<Buffer | undefined> {
    const key = digestKey(digest);
    const bytes = this.kept.get(key);
    if (!bytes) return undefined;
    if (!(await this.inner.has(digest))) {
      this.drop(key);
      throw new BlobNotFoundError(digest);
    }
    this.kept.delete(key);
    this.kept.set(key, bytes);
    return bytes;
  }

  private keep(digest: BlobDigest, bytes: Buffer): void {
    if (bytes.byteLength > this.maxBlobBytes || bytes.byteLength !== digest.size) return;
    const key = digestKey(digest);
    this.drop(key);
    this.kept.set(key, bytes);
    this.keptBytes += bytes.byteLength;
    for (const [k, v] of this.kept) {
      if (this.keptBytes <= this.budgetBytes) break;
      this.kept.delete(k);
      this.keptBytes -= v.byteLength;
    }
  }

  private drop(key: string): void {
    const old = this.kept.get(key);
    if (!old) return;
    this.kept.delete(key);
    this.keptBytes -= old.byteLength;
  }
}
