// One contract, every BlobStore: the same suite runs against the disk store,
// the memory store and the observing and small-blob caching decorators, through the BlobStore
// interface only. A behaviour that differs between them is a bug in one.
import { readFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf, emptyDigest, type BlobDigest } from '../../engine/digest';
import { nullSink } from '../../engine/events/event-bus';
import { BlobNotFoundError, DigestMismatchError, type BlobStore } from '../../engine/store/blob-store';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { ObservedBlobStore } from '../../engine/store/observed-store';
import { SmallBlobCache } from '../../engine/store/small-blob-cache';
import { blob, chunksOf, drain, tempDir } from './helpers';

interface Subject {
  store: BlobStore;
  cleanup(): Promise<void>;
}

const STORES: [string, () => Promise<Subject>][] = [
  ['memory', async () => ({ store: new MemoryBlobStore(), cleanup: async () => {} })],
  [
    'disk',
    async () => {
      const { dir, cleanup } = await tempDir('kiln-conformance-');
      const store = await DiskBlobStore.open({ dir, budgetBytes: 1 << 30 });
      return { store, cleanup: async () => (await store.close(), await cleanup()) };
    },
  ],
  [
    'observed(disk)',
    async () => {
      const { dir, cleanup } = await tempDir('kiln-conformance-');
      const store = new ObservedBlobStore(await DiskBlobStore.open({ dir, budgetBytes: 1 << 30 }), nullSink);
      return { store, cleanup: async () => (await store.close(), await cleanup()) };
    },
  ],
  [
    'small-blob cache(disk)',
    async () => {
      const { dir, cleanup } = await tempDir('kiln-conformance-');
      const store = new SmallBlobCache(await DiskBlobStore.open({ dir, budgetBytes: 1 << 30 }));
      return { store, cleanup: async () => (await store.close(), await cleanup()) };
    },
  ],
];

async function* failingAfter(data: Buffer): AsyncGenerator<Uint8Array> {
  yield data;
  throw new Error('the client went away');
}

async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

describe.each(STORES)('BlobStore contract: %s', (_name, open) => {
  let subject: Subject;
  let store: BlobStore;
  beforeEach(async () => {
    subject = await open();
    store = subject.store;
  });
  afterEach(async () => subject.cleanup());

  it('streams a blob in and back, whole and by range', async () => {
    const { data, digest } = await blob('0123456789abcdefghij');
    await store.write(digest, chunksOf(data, 3));
    expect(await store.has(digest)).toBe(true);
    expect(await store.readAll(digest)).toEqual(data);
    expect(await drain(await store.read(digest))).toEqual(data);
    expect((await drain(await store.read(digest, { offset: 5, limit: 4 }))).toString()).toBe('5678');
    expect((await drain(await store.read(digest, { offset: 15 }))).toString()).toBe('fghij');
    expect((await drain(await store.read(digest, { offset: 2, limit: 0 }))).toString()).toBe('23456789abcdefghij');
    expect((await drain(await store.read(digest, { offset: 18, limit: 100 }))).toString()).toBe('ij');
    expect(await drain(await store.read(digest, { offset: data.length }))).toHaveLength(0);
  });

  it('refuses a read range outside the blob with RangeError', async () => {
    const { data, digest } = await blob('short');
    await store.writeAll(digest, data);
    await expect(store.read(digest, { offset: data.length + 1 })).rejects.toBeInstanceOf(RangeError);
    await expect(store.read(digest, { offset: -1 })).rejects.toBeInstanceOf(RangeError);
    await expect(store.read(digest, { limit: -1 })).rejects.toBeInstanceOf(RangeError);
  });

  it('answers BlobNotFoundError for an unknown blob, and lists it as missing', async () => {
    const { digest } = await blob('never stored');
    const { data: other, digest: stored } = await blob('stored');
    await store.writeAll(stored, other);
    expect(await store.has(digest)).toBe(false);
    expect(await store.findMissing([stored, digest])).toEqual([digest]);
    const err = await rejectionOf(store.read(digest));
    expect(err).toBeInstanceOf(BlobNotFoundError);
    expect((err as BlobNotFoundError).digest).toEqual(digest);
    await expect(store.readAll(digest)).rejects.toBeInstanceOf(BlobNotFoundError);
  });

  it.each(['sha256', 'blake3'] as const)('always has the empty %s blob, which cannot be deleted', async (fn) => {
    const empty = emptyDigest(fn);
    expect(await store.has(empty)).toBe(true);
    expect(await store.findMissing([empty])).toEqual([]);
    expect(await store.readAll(empty)).toHaveLength(0);
    expect(await drain(await store.read(empty))).toHaveLength(0);
    expect(await store.delete(empty)).toBe(false);
    expect(await store.has(empty)).toBe(true);
    await store.writeAll(empty, new Uint8Array(0));
    expect(await store.readAll(empty)).toHaveLength(0);
  });

  it('refuses content whose hash or size disagrees with its digest, keeps nothing, and takes a correct retry', async () => {
    const { data, digest } = await blob('the real content');
    const wrongHash = Buffer.from('the fake content');
    await expect(store.writeAll(digest, wrongHash)).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(store.write(digest, chunksOf(Buffer.concat([data, Buffer.from('!')]), 4))).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(store.write(digest, chunksOf(data.subarray(1), 4))).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await store.has(digest)).toBe(false);
    expect(store.stats()).toMatchObject({ blobs: 0, bytes: 0 });
    await store.writeAll(digest, data);
    expect(await store.readAll(digest)).toEqual(data);
  });

  it('keeps nothing of a source that fails part way', async () => {
    const { data, digest } = await blob('half of this arrives');
    await expect(store.write(digest, failingAfter(data.subarray(0, 10)))).rejects.toThrow(/went away/);
    expect(await store.has(digest)).toBe(false);
    expect(store.stats().blobs).toBe(0);
  });

  it('lets concurrent writers of one blob all succeed, keeping one copy', async () => {
    const { data, digest } = await blob('written by many at once');
    await Promise.all(Array.from({ length: 8 }, (_, i) => store.write(digest, chunksOf(data, 1 + i))));
    expect(await store.readAll(digest)).toEqual(data);
    expect(store.stats()).toMatchObject({ blobs: 1, bytes: data.length });
  });

  it('hands out bytes the caller may change without changing the stored blob', async () => {
    const { data, digest } = await blob('do not touch');
    const given = Buffer.from(data);
    await store.writeAll(digest, given);
    given.fill(0x21);
    const first = await store.readAll(digest);
    first.fill(0x3f);
    expect(await store.readAll(digest)).toEqual(data);
  });

  it('deletes a blob once; stats follow what is stored', async () => {
    const a = await blob('first blob');
    const b = await blob('second, longer blob');
    await store.writeAll(a.digest, a.data);
    await store.writeAll(b.digest, b.data);
    expect(store.stats()).toMatchObject({ blobs: 2, bytes: a.data.length + b.data.length });
    expect(await store.delete(a.digest)).toBe(true);
    expect(await store.delete(a.digest)).toBe(false);
    expect(await store.has(a.digest)).toBe(false);
    await expect(store.readAll(a.digest)).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.readAll(b.digest)).toEqual(b.data);
    expect(store.stats()).toMatchObject({ blobs: 1, bytes: b.data.length });
  });

  it('keeps blobs of different digest functions apart', async () => {
    const data = Buffer.from('same bytes, two names');
    const sha = await digestOf(data, 'sha256');
    const b3 = await digestOf(data, 'blake3');
    await store.writeAll(sha, data);
    expect(await store.has(b3)).toBe(false);
    await store.writeAll(b3, data);
    expect(await store.delete(sha)).toBe(true);
    expect(await store.readAll(b3)).toEqual(data);
  });

  it('resumes an upload under its id, reports its progress, and makes the blob visible only at commit', async () => {
    const { data, digest } = await blob('uploaded in three parts, over two sessions');
    expect(await store.uploadStatus(digest, 'u1')).toBeUndefined();
    const first = await store.openUpload(digest, 'u1');
    expect(first.committedSize).toBe(0);
    await first.append(data.subarray(0, 10));
    await first.append(data.subarray(10, 20));
    expect(await store.uploadStatus(digest, 'u1')).toBe(20);
    expect(await store.uploadStatus(digest, 'u2')).toBeUndefined();
    expect(await store.has(digest)).toBe(false);

    const resumed = await store.openUpload(digest, 'u1');
    expect(resumed.committedSize).toBe(20);
    await resumed.append(data.subarray(20));
    expect(resumed.committedSize).toBe(data.length);
    await resumed.commit();
    expect(await store.readAll(digest)).toEqual(data);
    expect(await store.uploadStatus(digest, 'u1')).toBeUndefined();
  });

  it('fails an upload whose bytes disagree at commit, keeping nothing of it', async () => {
    const { data, digest } = await blob('what the client promised');
    const session = await store.openUpload(digest, 'bad');
    await session.append(Buffer.from('what the client sent instead'.slice(0, data.length)));
    await expect(session.commit()).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await store.has(digest)).toBe(false);
    expect(await store.uploadStatus(digest, 'bad')).toBeUndefined();
    expect((await store.openUpload(digest, 'bad')).committedSize).toBe(0);
  });

  it('drops the partial bytes of an aborted upload', async () => {
    const { data, digest } = await blob('abandoned upload');
    const session = await store.openUpload(digest, 'gone');
    await session.append(data.subarray(0, 5));
    await session.abort();
    expect(await store.uploadStatus(digest, 'gone')).toBeUndefined();
    expect(await store.has(digest)).toBe(false);
    expect((await store.openUpload(digest, 'gone')).committedSize).toBe(0);
  });

  it('lists the largest blobs first, when it offers a listing', async () => {
    if (!store.largest) return expect(store.largest).toBeUndefined();
    const blobs = await Promise.all(['a', 'ccc', 'bb'].map((t) => blob(t.repeat(10))));
    for (const b of blobs) await store.writeAll(b.digest, b.data);
    const list = store.largest(2);
    expect(list.map((l) => [l.digest, l.size])).toEqual([
      [blobs[1].digest, 30],
      [blobs[2].digest, 20],
    ]);
  });

  it('names a local file holding exactly the blob, when it offers local paths', async () => {
    if (!store.localPath) return expect(store.localPath).toBeUndefined();
    const { data, digest } = await blob('linkable');
    await store.writeAll(digest, data);
    const path = await store.localPath(digest);
    expect(path).toBeDefined();
    expect(await readFile(path!)).toEqual(data);
    const unknown: BlobDigest = (await blob('not here')).digest;
    expect(await store.localPath(unknown)).toBeUndefined();
  });
});
