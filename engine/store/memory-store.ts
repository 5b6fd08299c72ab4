// A BlobStore in memory: for tests and as the reference behaviour of the seam.
import { Readable } from 'node:stream';
import { DIGEST_FUNCTIONS, digestKey, isEmptyBlob, type BlobDigest } from '../digest';
import {
  BlobNotFoundError,
  DigestMismatchError,
  readSpan,
  type BlobStore,
  type LargestBlob,
  type ReadRange,
  type StoreStats,
  type UploadSession,
} from './blob-store';

export class MemoryBlobStore implements BlobStore {
  private blobs = new Map<string, Buffer>();
  private uploads = new Map<string, { digest: BlobDigest; chunks: Buffer[]; size: number }>();
  private pins = new Map<string, number>();

  constructor(private readonly budgetBytes = Number.MAX_SAFE_INTEGER) {}

  async findMissing(digests: BlobDigest[]): Promise<BlobDigest[]> {
    return digests.filter((d) => !isEmptyBlob(d) && !this.blobs.has(digestKey(d)));
  }

  async has(digest: BlobDigest): Promise<boolean> {
    return isEmptyBlob(digest) || this.blobs.has(digestKey(digest));
  }

  async readAll(digest: BlobDigest): Promise<Buffer> {
    if (isEmptyBlob(digest)) return Buffer.alloc(0);
    const data = this.blobs.get(digestKey(digest));
    if (!data) throw new BlobNotFoundError(digest);
    return Buffer.from(data); // the caller's to change, as a file read would be
  }

  async read(digest: BlobDigest, range: ReadRange = {}): Promise<Readable> {
    const { start, end } = readSpan(digest, range);
    const data = await this.readAll(digest);
    return Readable.from([data.subarray(start, end)]);
  }

  async write(digest: BlobDigest, source: AsyncIterable<Uint8Array> | Readable): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of source as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(c));
    await this.writeAll(digest, Buffer.concat(chunks));
  }

  async writeAll(digest: BlobDigest, data: Uint8Array): Promise<void> {
    await verify(digest, [Buffer.from(data)], data.byteLength);
    if (!isEmptyBlob(digest)) this.blobs.set(digestKey(digest), Buffer.from(data));
  }

  async openUpload(digest: BlobDigest, uploadId: string): Promise<UploadSession> {
    const key = `${uploadId}/${digestKey(digest)}`;
    let state = this.uploads.get(key);
    if (!state) this.uploads.set(key, (state = { digest, chunks: [], size: 0 }));
    const s = state;
    return {
      get committedSize() {
        return s.size;
      },
      append: async (chunk) => {
        s.chunks.push(Buffer.from(chunk));
        s.size += chunk.byteLength;
      },
      commit: async () => {
        this.uploads.delete(key);
        await this.writeAll(digest, Buffer.concat(s.chunks));
      },
      abort: async () => void this.uploads.delete(key),
    };
  }

  async uploadStatus(digest: BlobDigest, uploadId: string): Promise<number | undefined> {
    return this.uploads.get(`${uploadId}/${digestKey(digest)}`)?.size;
  }

  async delete(digest: BlobDigest): Promise<boolean> {
    return this.blobs.delete(digestKey(digest));
  }

  pin(digests: BlobDigest[]): () => void {
    const keys = digests.map(digestKey);
    for (const k of keys) this.pins.set(k, (this.pins.get(k) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const k of keys) {
        const n = (this.pins.get(k) ?? 1) - 1;
        if (n <= 0) this.pins.delete(k);
        else this.pins.set(k, n);
      }
    };
  }

  isPinned(digest: BlobDigest): boolean {
    return this.pins.has(digestKey(digest));
  }

  stats(): StoreStats {
    let bytes = 0;
    for (const b of this.blobs.values()) bytes += b.length;
    return { bytes, blobs: this.blobs.size, budgetBytes: this.budgetBytes, evictions: 0, evictedBytes: 0 };
  }

  /** Reference behaviour: a full sort is fine for a test store. No recency is kept here. */
  largest(limit: number): LargestBlob[] {
    const out: LargestBlob[] = [];
    for (const [key, data] of this.blobs) {
      const [fn, hash] = key.split('/') as [BlobDigest['fn'], string];
      out.push({ digest: { fn, hash, size: data.length }, size: data.length });
    }
    out.sort((a, b) => b.size - a.size || (a.digest.hash < b.digest.hash ? -1 : a.digest.hash > b.digest.hash ? 1 : 0));
    return out.slice(0, Math.max(0, Math.floor(limit)));
  }

  async close(): Promise<void> {}
}

async function verify(digest: BlobDigest, chunks: Buffer[], size: number): Promise<void> {
  if (size !== digest.size) {
    throw new DigestMismatchError(`received ${size} bytes for a blob declared as ${digest.size} bytes (${digest.hash})`);
  }
  const h = await DIGEST_FUNCTIONS[digest.fn].createHasher();
  for (const c of chunks) h.update(c);
  const actual = h.digest();
  if (actual !== digest.hash) {
    throw new DigestMismatchError(`content hashes to ${actual}, not the declared ${digest.fn} ${digest.hash}`);
  }
}
