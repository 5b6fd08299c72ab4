// The CAS seam. Every storage backend (disk, memory) and decorator (metrics,
// read-through) implements BlobStore; services and workers only see this.
import type { Readable } from 'node:stream';
import type { BlobDigest } from '../digest';

export class BlobNotFoundError extends Error {
  constructor(readonly digest: BlobDigest) {
    super(`blob ${digest.fn}:${digest.hash}/${digest.size} is not in the CAS`);
  }
}

/** Uploaded bytes disagree with the digest they were sent under. Nothing is stored. */
export class DigestMismatchError extends Error {}

// The store cannot take the blob (budget full of pinned blobs, disk full); engine/grpc answers it RESOURCE_EXHAUSTED.
export { StoreFullError } from '../common/fault-errors';

export interface ReadRange {
  offset?: number;
  /** 0 or undefined: to the end. */
  limit?: number;
  /** Bytes the stream reads ahead at most (a hint; streamed readers that pace themselves keep it small). */
  chunkBytes?: number;
}

/**
 * The [start, end) a read of `range` covers in a blob of `size` bytes, the same
 * for every store. An offset past the end or a negative number is a RangeError.
 */
export function readSpan(digest: BlobDigest, range: ReadRange = {}): { start: number; end: number } {
  const offset = range.offset ?? 0;
  const limit = range.limit ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > digest.size) {
    throw new RangeError(`read offset ${offset} is outside blob ${digest.hash} of ${digest.size} bytes`);
  }
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`read limit ${limit} must be a non-negative integer`);
  return { start: offset, end: limit ? Math.min(digest.size, offset + limit) : digest.size };
}

/** A resumable upload (ByteStream Write). Bytes are kept across calls under one upload id. */
export interface UploadSession {
  /** Bytes received so far. */
  readonly committedSize: number;
  append(chunk: Uint8Array): Promise<void>;
  /** Verifies size and hash, then makes the blob visible atomically. */
  commit(): Promise<void>;
  /** Drops the partial bytes. */
  abort(): Promise<void>;
}

export interface StoreStats {
  bytes: number;
  blobs: number;
  budgetBytes: number;
  evictions: number;
  evictedBytes: number;
}

/** One of the largest stored blobs (BlobStore.largest). */
export interface LargestBlob {
  digest: BlobDigest;
  size: number;
  /** Recency: 0 is the most recently used blob; the highest rank is evicted next. */
  lastUsedRank?: number;
}

export interface BlobStore {
  /** The digests in `digests` that are not stored (the empty blob is always stored). Touches the others. */
  findMissing(digests: BlobDigest[]): Promise<BlobDigest[]>;
  has(digest: BlobDigest): Promise<boolean>;
  /** Streams [offset, offset+limit) of the blob. Rejects with BlobNotFoundError. */
  read(digest: BlobDigest, range?: ReadRange): Promise<Readable>;
  /** Whole blob in memory: only for small blobs (protos, batch reads). */
  readAll(digest: BlobDigest): Promise<Buffer>;
  /** Streams a blob in, verifies it, and makes it visible atomically. Rejects with DigestMismatchError. */
  write(digest: BlobDigest, source: AsyncIterable<Uint8Array> | Readable): Promise<void>;
  writeAll(digest: BlobDigest, data: Uint8Array): Promise<void>;
  /** Starts or resumes the upload `uploadId` of `digest`. */
  openUpload(digest: BlobDigest, uploadId: string): Promise<UploadSession>;
  /** Bytes received so far for an upload, or undefined when there is none. */
  uploadStatus(digest: BlobDigest, uploadId: string): Promise<number | undefined>;
  delete(digest: BlobDigest): Promise<boolean>;
  /** Keeps blobs from being evicted until the returned release is called (running actions). */
  pin(digests: BlobDigest[]): () => void;
  /** A path on the local file system holding the blob, for hard-linking; undefined if the store has none. */
  localPath?(digest: BlobDigest): Promise<string | undefined>;
  /**
   * Says an action hard-linked the blob's file into its exec root (so it could change
   * it in place); until the release is called, reads verify the content. Optional.
   */
  holdLinked?(digest: BlobDigest): () => void;
  stats(): StoreStats;
  /** The `limit` largest stored blobs, largest first, without touching them; one pass over the index. Optional: callers test for it. */
  largest?(limit: number): LargestBlob[];
  /** Changes the size budget at run time, evicting down to a lower one before resolving; absent when the store has no budget to change. */
  setBudget?(bytes: number): Promise<void>;
  close(): Promise<void>;
}
