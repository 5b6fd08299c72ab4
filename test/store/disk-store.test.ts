import { readdir, rm, stat, unlink, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { emptyDigest, type BlobDigest } from '../../engine/digest';
import { EventBus, type EventOf } from '../../engine/events/event-bus';
import { BlobNotFoundError, DigestMismatchError, StoreFullError } from '../../engine/store/blob-store';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { blob, chunksOf, drain, tempDir } from './helpers';

let dir: string;
let cleanup: () => Promise<void>;
const open: DiskBlobStore[] = [];

async function openStore(options: Partial<Parameters<typeof DiskBlobStore.open>[0]> = {}): Promise<DiskBlobStore> {
  const store = await DiskBlobStore.open({ dir, budgetBytes: 1 << 30, clock: new ManualClock(), ...options });
  open.push(store);
  return store;
}

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  await cleanup();
});

/** Every file under the store's blob shards and temp folder (what a reader could ever see). */
async function visibleFiles(): Promise<string[]> {
  const out: string[] = [];
  for (const top of ['sha256', 'blake3', 'tmp']) {
    const base = join(dir, top);
    for (const e of await readdir(base, { recursive: true, withFileTypes: true }).catch(() => [])) {
      if (e.isFile()) out.push(join(e.parentPath, e.name).slice(dir.length + 1));
    }
  }
  return out.sort();
}

describe('DiskBlobStore: small blobs before their files are written', () => {
  it('a small blob is found, read whole and by range, and linkable as soon as its write resolves', async () => {
    const store = await openStore({ writeOutQuietMs: 60_000 });
    const { data, digest } = await blob('acknowledged, not yet a file');
    await store.writeAll(digest, data);
    const path = join(dir, 'sha256', digest.hash.slice(0, 2), `${digest.hash}-${digest.size}`);
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await store.findMissing([digest])).toEqual([]);
    expect(await store.readAll(digest)).toEqual(data);
    expect((await drain(await store.read(digest, { offset: 14, limit: 7 }))).toString()).toBe('not yet');
    const chunks: Buffer[] = [];
    for await (const c of await store.read(digest, { chunkBytes: 8 })) chunks.push(c as Buffer);
    expect(chunks.map((c) => c.length)).toEqual([8, 8, 8, 4]);
    expect(Buffer.concat(chunks)).toEqual(data);
    // An exec root hard-links the path it gets: the file must be there, whole and read-only.
    expect(await store.localPath(digest)).toBe(path);
    expect(await readFile(path)).toEqual(data);
    expect((await stat(path)).mode & 0o777).toBe(0o444);
  });

  it('a small blob deleted or evicted before its file is written never shows up as a file', async () => {
    const store = await openStore({ writeOutQuietMs: 60_000, budgetBytes: 100 });
    const deleted = await blob('deleted before written');
    await store.writeAll(deleted.digest, deleted.data);
    expect(await store.delete(deleted.digest)).toBe(true);
    await expect(store.readAll(deleted.digest)).rejects.toBeInstanceOf(BlobNotFoundError);
    const first = await blob('a'.repeat(60));
    const second = await blob('b'.repeat(60)); // over the 100-byte budget: the first goes
    await store.writeAll(first.digest, first.data);
    await store.writeAll(second.digest, second.data);
    expect(await store.findMissing([first.digest, second.digest])).toEqual([first.digest]);
    await store.writeOutFiles();
    const files = await visibleFiles();
    expect(files.some((f) => f.includes(deleted.digest.hash))).toBe(false);
    expect(files.some((f) => f.includes(first.digest.hash))).toBe(false);
    expect(files.some((f) => f.includes(second.digest.hash))).toBe(true);
  });

  it('a small blob acknowledged and killed before its file was written is there after a restart', async () => {
    const store = await DiskBlobStore.open({ dir, budgetBytes: 1 << 30, clock: new ManualClock(), writeOutQuietMs: 60_000 });
    const { data, digest } = await blob('only in the log when the process died');
    await store.writeAll(digest, data);
    // No close: as after kill -9, nothing but the log holds it.
    await expect(stat(store.pathOf(digest))).rejects.toMatchObject({ code: 'ENOENT' });
    const restarted = await openStore();
    expect(await restarted.findMissing([digest])).toEqual([]);
    expect(await readFile(restarted.pathOf(digest))).toEqual(data);
  });
});

describe('DiskBlobStore: writing and reading', () => {
  it('stores a blob read-only in a sharded file and streams it back whole and by range', async () => {
    const store = await openStore();
    const { data, digest } = await blob('hello, content-addressed world');
    await store.write(digest, chunksOf(data, 7));

    const path = join(dir, 'sha256', digest.hash.slice(0, 2), `${digest.hash}-${digest.size}`);
    expect(await store.localPath(digest)).toBe(path);
    expect((await stat(path)).mode & 0o777).toBe(0o444);
    expect(await readFile(path)).toEqual(data);

    expect(await drain(await store.read(digest))).toEqual(data);
    expect(await store.readAll(digest)).toEqual(data);
    expect((await drain(await store.read(digest, { offset: 7, limit: 7 }))).toString()).toBe('content');
    expect((await drain(await store.read(digest, { offset: 26 }))).toString()).toBe('orld');
    expect((await drain(await store.read(digest, { offset: digest.size }))).length).toBe(0);
    await expect(store.read(digest, { offset: digest.size + 1 })).rejects.toThrow(RangeError);
    expect(await store.has(digest)).toBe(true);
    expect(store.stats()).toMatchObject({ blobs: 1, bytes: data.length });
  });

  it('accepts a Readable source and answers BlobNotFoundError for unknown blobs', async () => {
    const store = await openStore();
    const { data, digest } = await blob('from a readable', 'blake3');
    await store.write(digest, Readable.from([data.subarray(0, 4), data.subarray(4)]));
    expect(await store.readAll(digest)).toEqual(data);

    const other = (await blob('never stored')).digest;
    await expect(store.read(other)).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.localPath(other)).toBeUndefined();
    expect(await store.findMissing([digest, other])).toEqual([other]);
  });

  it('FindMissing matches function, hash and size, and reports deleted and vanished blobs missing', async () => {
    const store = await openStore();
    const sha = await blob('kept under sha256');
    const b3 = await blob('kept under blake3', 'blake3');
    const gone = await blob('deleted later');
    const vanished = await blob('removed behind the store');
    for (const b of [sha, b3, gone, vanished]) await store.writeAll(b.digest, b.data);
    const asBlake3: BlobDigest = { ...sha.digest, fn: 'blake3' };
    const wrongSize: BlobDigest = { ...b3.digest, size: b3.digest.size + 1 };
    expect(await store.findMissing([sha.digest, b3.digest, asBlake3, wrongSize])).toEqual([asBlake3, wrongSize]);
    await store.delete(gone.digest);
    await store.writeOutFiles(); // small blobs' files follow their acknowledgement shortly
    await unlink(store.pathOf(vanished.digest));
    await expect(store.readAll(vanished.digest)).rejects.toBeInstanceOf(BlobNotFoundError); // noticed on read
    expect(await store.findMissing([gone.digest, vanished.digest, sha.digest])).toEqual([gone.digest, vanished.digest]);
  });

  it('rejects content whose hash or size disagrees, leaves nothing visible, and a retry succeeds', async () => {
    const store = await openStore();
    const { data, digest } = await blob('the real content');

    await expect(store.writeAll(digest, Buffer.from('the fake content'))).rejects.toThrow(/hashes to/);
    await expect(store.writeAll(digest, data.subarray(1))).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(store.write(digest, chunksOf(Buffer.concat([data, data]), 5))).rejects.toThrow(/more than 16 bytes/);
    expect(await visibleFiles()).toEqual(expect.not.arrayContaining([expect.stringContaining(digest.hash)]));
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(await store.has(digest)).toBe(false);
    expect(store.stats().blobs).toBe(0);

    await store.writeAll(digest, data);
    expect(await store.readAll(digest)).toEqual(data);
  });

  it('a source that fails mid-stream leaves nothing behind', async () => {
    const store = await openStore();
    const { data, digest } = await blob('x'.repeat(1000));
    async function* broken() {
      yield data.subarray(0, 500);
      throw new Error('client went away');
    }
    await expect(store.write(digest, broken())).rejects.toThrow('client went away');
    expect(await store.has(digest)).toBe(false);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('lets concurrent writers of the same blob all succeed with one stored copy', async () => {
    const store = await openStore();
    const { data, digest } = await blob('raced'.repeat(10_000));
    await Promise.all(Array.from({ length: 8 }, () => store.write(digest, chunksOf(data, 4096))));
    expect(store.stats()).toMatchObject({ blobs: 1, bytes: data.length });
    expect(await store.readAll(digest)).toEqual(data);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('always has the empty blob for every digest function, even if its file is removed', async () => {
    const store = await openStore();
    for (const fn of ['sha256', 'blake3'] as const) {
      const empty = emptyDigest(fn);
      expect(await store.has(empty)).toBe(true);
      expect(await store.findMissing([empty])).toEqual([]);
      expect((await store.readAll(empty)).length).toBe(0);
      const path = (await store.localPath(empty))!;
      expect((await stat(path)).size).toBe(0);
      await unlink(path);
      expect((await drain(await store.read(empty))).length).toBe(0);
      expect((await stat((await store.localPath(empty))!)).size).toBe(0);
      await store.writeAll(empty, Buffer.alloc(0));
      expect(await store.delete(empty)).toBe(false);
      expect(await store.has(empty)).toBe(true);
    }
    expect(store.stats().blobs).toBe(0);
  });

  it('tolerates blob files deleted behind its back', async () => {
    const store = await openStore();
    const { data, digest } = await blob('short-lived');
    await store.writeAll(digest, data);
    await unlink((await store.localPath(digest))!);
    await expect(store.read(digest)).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.has(digest)).toBe(false);
    expect(store.stats().bytes).toBe(0);
    await store.writeAll(digest, data);
    expect(await store.readAll(digest)).toEqual(data);
  });

  it('deletes blobs', async () => {
    const store = await openStore();
    const { data, digest } = await blob('delete me');
    await store.writeAll(digest, data);
    expect(await store.delete(digest)).toBe(true);
    expect(await store.delete(digest)).toBe(false);
    expect(await store.has(digest)).toBe(false);
    expect(await visibleFiles()).not.toContainEqual(expect.stringContaining(digest.hash));
  });
});

describe('DiskBlobStore: shard folders', () => {
  it('makes a shard folder removed behind its back again, and leaves no temp file after a write', async () => {
    const store = await openStore();
    const a = await blob('first blob');
    await store.write(a.digest, chunksOf(a.data, 4));
    await store.writeOutFiles(); // the shard folder is made now
    // Another blob in the same shard, after a user removed the shard folder the store remembers making.
    let b = await blob('second blob 0');
    for (let i = 1; b.digest.hash.slice(0, 2) !== a.digest.hash.slice(0, 2); i++) b = await blob(`second blob ${i}`);
    await rm(join(dir, 'sha256', a.digest.hash.slice(0, 2)), { recursive: true });
    await store.writeAll(b.digest, b.data);
    expect(await drain(await store.read(b.digest))).toEqual(b.data);
    await store.writeOutFiles();
    expect(await drain(await store.read(b.digest))).toEqual(b.data);
    const files = await visibleFiles();
    expect(files).toContain(`sha256/${b.digest.hash.slice(0, 2)}/${b.digest.hash}-${b.digest.size}`);
    expect(files.filter((f) => f.startsWith('tmp'))).toEqual([]);
    expect((await stat(join(dir, files.find((f) => f.includes(b.digest.hash))!))).mode & 0o222).toBe(0);
  });
});

describe('DiskBlobStore: budget and eviction', () => {
  async function fill(store: DiskBlobStore, names: string[]): Promise<Record<string, BlobDigest>> {
    const out: Record<string, BlobDigest> = {};
    for (const n of names) {
      const { data, digest } = await blob(n.repeat(30));
      await store.writeAll(digest, data);
      out[n] = digest;
    }
    return out;
  }

  it('evicts least recently used blobs first, counting reads and lookups as use', async () => {
    const events = new EventBus();
    const evicted: EventOf<'blob.evicted'>[] = [];
    events.on('blob.evicted', (e) => evicted.push(e));
    const store = await openStore({ budgetBytes: 100, events });
    const d = await fill(store, ['a', 'b', 'c']);
    await store.has(d.a!); // order now b, c, a
    await fill(store, ['d']); // 120 bytes > 100: b goes
    expect(evicted.map((e) => e.digest)).toEqual([d.b]);
    expect(await store.has(d.b!)).toBe(false);
    expect(await store.localPath(d.b!)).toBeUndefined();
    await expect(stat(store.pathOf(d.b!))).rejects.toThrow(/ENOENT/);

    await store.findMissing([d.c!]); // order a, d, c
    await fill(store, ['e']);
    expect(evicted.map((e) => e.digest)).toEqual([d.b, d.a]);
    expect(store.stats()).toMatchObject({ blobs: 3, bytes: 90, budgetBytes: 100, evictions: 2, evictedBytes: 60 });
  });

  it('a lookup counts as use for anything that reads the recency order, even in the same turn', async () => {
    const store = await openStore({ budgetBytes: 100 });
    const d = await fill(store, ['a', 'b', 'c']);
    const lookup = store.findMissing([d.a!]); // runs now; its touch is applied after this turn or on demand
    expect(store.largest(3).map((b) => [b.digest, b.lastUsedRank])).toEqual([
      [d.a, 0],
      [d.c, 1],
      [d.b, 2],
    ]);
    expect(await lookup).toEqual([]);
  });

  it('never evicts pinned blobs, goes over budget when all are pinned, and catches up on release', async () => {
    const store = await openStore({ budgetBytes: 100 });
    const d = await fill(store, ['a', 'b', 'c']);
    const releaseA = store.pin([d.a!]);
    const releaseA2 = store.pin([d.a!]); // pins are counted
    Object.assign(d, await fill(store, ['d']));
    expect(await store.has(d.a!)).toBe(true);
    expect(await store.has(d.b!)).toBe(false);

    const releaseRest = store.pin([d.c!, d.d!]);
    const e = await fill(store, ['e']); // everything else pinned: stays over budget
    expect(store.stats().bytes).toBe(120);
    expect(await store.has(e.e!)).toBe(true);
    const releaseE = store.pin([e.e!]); // else releasing a pin would make room by evicting e

    releaseA();
    releaseA(); // idempotent: does not drop the second pin
    expect(store.stats().bytes).toBe(120);
    releaseA2();
    expect(await store.has(d.a!)).toBe(false);
    expect(store.stats().bytes).toBe(90);
    releaseRest();
    releaseE();
  });

  it('refuses a blob larger than the whole budget', async () => {
    const store = await openStore({ budgetBytes: 10 });
    const { data, digest } = await blob('eleven byte');
    await expect(store.writeAll(digest, data)).rejects.toBeInstanceOf(StoreFullError);
    await expect(store.openUpload(digest, 'u')).rejects.toThrow(/larger than the whole cache budget/);
  });

  it('setBudget: a lower budget evicts down to it at once (never pinned blobs), a higher one keeps everything', async () => {
    const events = new EventBus();
    const evicted: BlobDigest[] = [];
    events.on('blob.evicted', (e) => evicted.push(e.digest));
    const store = await openStore({ budgetBytes: 1000, events });
    const d = await fill(store, ['a', 'b', 'c', 'd']); // 120 bytes, oldest first
    const release = store.pin([d.a!]);
    await store.setBudget(60);
    // a is the least recently used but pinned: b and c go; the store stays at 60 with a and d.
    expect(evicted).toEqual([d.b, d.c]);
    expect(await store.has(d.a!)).toBe(true);
    expect(await store.has(d.d!)).toBe(true);
    await expect(stat(store.pathOf(d.b!))).rejects.toThrow(/ENOENT/);
    expect(store.stats()).toMatchObject({ bytes: 60, blobs: 2, budgetBytes: 60, evictions: 2 });

    await store.setBudget(30); // only d can go
    expect(evicted).toEqual([d.b, d.c, d.d]);
    expect(store.stats()).toMatchObject({ bytes: 30, budgetBytes: 30 });
    const big = await blob('x'.repeat(31));
    await expect(store.writeAll(big.digest, big.data)).rejects.toThrow(/larger than the whole cache budget \(30 bytes\)/);

    await store.setBudget(1000);
    await fill(store, ['e', 'f']);
    expect(store.stats()).toMatchObject({ bytes: 90, blobs: 3, budgetBytes: 1000, evictions: 3 });
    release();
    await expect(store.setBudget(0)).rejects.toThrow(/positive number of bytes/);
    expect(store.stats().budgetBytes).toBe(1000);
  });
});

describe('DiskBlobStore: restart', () => {
  it('rebuilds the index and recency order from the file names and the saved order', async () => {
    let store = await openStore({ budgetBytes: 100 });
    const names = ['a', 'b', 'c'];
    const d: BlobDigest[] = [];
    for (const n of names) {
      const { data, digest } = await blob(n.repeat(30));
      await store.writeAll(digest, data);
      d.push(digest);
    }
    await store.has(d[0]!); // order b, c, a
    await store.close();

    store = await openStore({ budgetBytes: 100 });
    expect(store.stats()).toMatchObject({ blobs: 3, bytes: 90 });
    expect(await store.readAll(d[2]!)).toEqual(Buffer.from('c'.repeat(30))); // order b, a, c
    const { data, digest } = await blob('d'.repeat(30));
    await store.writeAll(digest, data);
    expect(await store.findMissing(d)).toEqual([d[1]]);
  });

  it('after a crash keeps every blob, drops leftover temp files, and orders unsaved blobs as newest', async () => {
    const clock = new ManualClock();
    const crashed = await DiskBlobStore.open({ dir, budgetBytes: 100, clock, indexSaveDelayMs: 1000 });
    const { data: a, digest: da } = await blob('a'.repeat(30));
    await crashed.writeAll(da, a);
    clock.advance(1000); // debounced save of the order [a]
    await vi_waitFor(async () => (await readFile(join(dir, 'recency'), 'utf8').catch(() => '')).includes(da.hash));
    const { data: b, digest: db } = await blob('b'.repeat(30));
    await crashed.writeAll(db, b);
    await crashed.has(da); // order b, a — never saved: the process "dies" here without close()
    await writeFile(join(dir, 'tmp', 'half-written.1234.kiln-tmp'), 'garbage');

    const store = await openStore({ budgetBytes: 100 });
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(store.stats()).toMatchObject({ blobs: 2, bytes: 60 });
    const { data: c, digest: dc } = await blob('c'.repeat(30));
    const { data: d, digest: dd } = await blob('d'.repeat(30));
    await store.writeAll(dc, c);
    await store.writeAll(dd, d);
    // The saved order knew only a; b (unsaved) counts as newer, so a goes first.
    expect(await store.findMissing([da, db, dc, dd])).toEqual([da]);
  });

  it('evicts down to a budget lowered between runs', async () => {
    let store = await openStore({ budgetBytes: 100 });
    for (const n of ['a', 'b', 'c']) {
      const { data, digest } = await blob(n.repeat(30));
      await store.writeAll(digest, data);
    }
    await store.close();
    store = await openStore({ budgetBytes: 40 });
    expect(store.stats()).toMatchObject({ blobs: 1, bytes: 30, evictions: 2 });
    expect(await store.has((await blob('c'.repeat(30))).digest)).toBe(true);
  });
});

async function vi_waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
