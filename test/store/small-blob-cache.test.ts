import { describe, expect, it } from 'vitest';
import type { BlobDigest } from '../../engine/digest';
import { BlobNotFoundError } from '../../engine/store/blob-store';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { SmallBlobCache } from '../../engine/store/small-blob-cache';
import { blob, drain } from './helpers';

/** A memory store that counts the whole-blob reads that reach it. */
class CountingStore extends MemoryBlobStore {
  reads = 0;
  override readAll(digest: BlobDigest): Promise<Buffer> {
    this.reads++;
    return super.readAll(digest);
  }
}

describe('SmallBlobCache', () => {
  it('answers repeated reads of a small blob from memory, whole and by range', async () => {
    const inner = new CountingStore();
    const cache = new SmallBlobCache(inner);
    const { data, digest } = await blob('a Command proto, say');
    await cache.writeAll(digest, data);
    expect(await cache.readAll(digest)).toEqual(data);
    expect(await cache.readAll(digest)).toEqual(data);
    expect(await drain(await cache.read(digest, { offset: 2, limit: 5 }))).toEqual(data.subarray(2, 7));
    expect(inner.reads).toBe(0);

    // A blob first met on a read is kept from then on.
    const other = await blob('written by someone else');
    await inner.writeAll(other.digest, other.data);
    await cache.readAll(other.digest);
    await cache.readAll(other.digest);
    expect(inner.reads).toBe(1);
  });

  it('keeps a small blob uploaded in chunks from its first byte, once the store has verified it', async () => {
    const inner = new CountingStore();
    const cache = new SmallBlobCache(inner);
    const { data, digest } = await blob('an Action proto sent by ByteStream');
    const upload = await cache.openUpload(digest, 'u1');
    const first = Buffer.from(data.subarray(0, 10));
    await upload.append(first);
    first.fill(0); // the gRPC layer's buffer, reused
    await upload.append(data.subarray(10));
    await upload.commit();
    expect(await cache.readAll(digest)).toEqual(data);
    expect(inner.reads).toBe(0);

    // A wrong upload is refused by the store and kept nowhere.
    const other = await blob('the declared bytes');
    const bad = await cache.openUpload(other.digest, 'u2');
    await bad.append(Buffer.from('THE declared bytes'));
    await expect(bad.commit()).rejects.toThrow();
    await expect(cache.readAll(other.digest)).rejects.toBeInstanceOf(BlobNotFoundError);

    // A resumed upload (bytes before this session unseen) is read from the store.
    inner.reads = 0;
    const resumed = await blob('resumed after a dropped stream');
    const s1 = await cache.openUpload(resumed.digest, 'u3');
    await s1.append(resumed.data.subarray(0, 7));
    const s2 = await cache.openUpload(resumed.digest, 'u3');
    expect(s2.committedSize).toBe(7);
    await s2.append(resumed.data.subarray(7));
    await s2.commit();
    expect(await cache.readAll(resumed.digest)).toEqual(resumed.data);
    expect(inner.reads).toBe(1);
  });

  it('never serves a blob the wrapped store no longer holds (evicted, deleted behind its back)', async () => {
    const inner = new CountingStore();
    const cache = new SmallBlobCache(inner);
    const { data, digest } = await blob('soon evicted');
    await cache.writeAll(digest, data);
    await inner.delete(digest);
    await expect(cache.readAll(digest)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(cache.read(digest)).rejects.toBeInstanceOf(BlobNotFoundError);
  });

  it('keeps its own copy of written bytes, and forgets a deleted blob', async () => {
    const inner = new CountingStore();
    const cache = new SmallBlobCache(inner);
    const { data, digest } = await blob('request buffer');
    const request = Buffer.from(data);
    await cache.writeAll(digest, request);
    request.fill(0); // The gRPC layer reuses or drops its buffers; the cache must not care.
    expect(await cache.readAll(digest)).toEqual(data);
    expect(await cache.delete(digest)).toBe(true);
    await expect(cache.readAll(digest)).rejects.toBeInstanceOf(BlobNotFoundError);
  });

  it('keeps only blobs up to maxBlobBytes, and drops the least recently used beyond its budget', async () => {
    const inner = new CountingStore();
    const cache = new SmallBlobCache(inner, { maxBlobBytes: 10, budgetBytes: 20 });
    const big = await blob('more than ten bytes');
    const [a, b, c] = await Promise.all(['aaaaaaaaa', 'bbbbbbbbb', 'ccccccccc'].map((t) => blob(t)));
    await cache.writeAll(big.digest, big.data);
    await cache.readAll(big.digest);
    expect(inner.reads).toBe(1); // too big to keep

    for (const x of [a!, b!]) await cache.writeAll(x.digest, x.data);
    await cache.readAll(a!.digest); // a is now more recent than b
    await cache.writeAll(c!.digest, c!.data); // 27 bytes > 20: b goes
    inner.reads = 0;
    await cache.readAll(a!.digest);
    await cache.readAll(c!.digest);
    expect(inner.reads).toBe(0);
    await cache.readAll(b!.digest);
    expect(inner.reads).toBe(1);
  });
});
