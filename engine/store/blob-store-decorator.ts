// The base of every BlobStore decorator (observed, small-blob cache, the
// upstream's read-through): forwards everything to the store it wraps, so a
// decorator overrides only what it changes. The optional methods exist only
// when the wrapped store has them, because callers test for them (hard-linking
// needs localPath).
import type { Readable } from 'node:stream';
import type { BlobDigest } from '../digest';
import type { BlobStore, LargestBlob, ReadRange, StoreStats, UploadSession } from './blob-store';

export abstract class BlobStoreDecorator implements BlobStore {
  readonly localPath?: (digest: BlobDigest) => Promise<string | undefined>;
  readonly setBudget?: (bytes: number) => Promise<void>;
  readonly largest?: (limit: number) => LargestBlob[];
  readonly holdLinked?: (digest: BlobDigest) => () => void;

  constructor(protected readonly inner: BlobStore) {
    if (inner.holdLinked) this.holdLinked = (d) => inner.holdLinked!(d);
    if (inner.localPath) this.localPath = (d) => inner.localPath!(d);
    if (inner.setBudget) this.setBudget = (bytes) => inner.setBudget!(bytes);
    if (inner.largest) this.largest = (limit) => inner.largest!(limit);
  }

  findMissing(digests: BlobDigest[]): Promise<BlobDigest[]> {
    return this.inner.findMissing(digests);
  }

  has(digest: BlobDigest): Promise<boolean> {
    return this.inner.has(digest);
  }

  read(digest: BlobDigest, range?: ReadRange): Promise<Readable> {
    return this.inner.read(digest, range);
  }

  readAll(digest: BlobDigest): Promise<Buffer> {
    return this.inner.readAll(digest);
  }

  write(digest: BlobDigest, source: AsyncIterable<Uint8Array> | Readable): Promise<void> {
    return this.inner.write(digest, source);
  }

  writeAll(digest: BlobDigest, data: Uint8Array): Promise<void> {
    return this.inner.writeAll(digest, data);
  }

  openUpload(digest: BlobDigest, uploadId: string): Promise<UploadSession> {
    return this.inner.openUpload(digest, uploadId);
  }

  uploadStatus(digest: BlobDigest, uploadId: string): Promise<number | undefined> {
    return this.inner.uploadStatus(digest, uploadId);
  }

  delete(digest: BlobDigest): Promise<boolean> {
    return this.inner.delete(digest);
  }

  pin(digests: BlobDigest[]): () => void {
    return this.inner.pin(digests);
  }

  stats(): StoreStats {
    return this.inner.stats();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
