import { once } from 'node:events';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { emptyDigest } from '../../engine/digest';
import { EventBus, type KilnEvent } from '../../engine/events/event-bus';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { ObservedBlobStore } from '../../engine/store/observed-store';
import { blob, chunksOf, drain, tempDir } from './helpers';

/** A store whose reads return the stream the test holds, to drive its end by hand. */
class HeldReads extends MemoryBlobStore {
  readonly source = new Readable({ read() {} });
  override async read(): Promise<Readable> {
    return this.source;
  }
}

let events: KilnEvent[];
let bus: EventBus;
const clock = new ManualClock(1_000);

beforeEach(() => {
  events = [];
  bus = new EventBus();
  bus.subscribe((e) => events.push(e));
});

describe('ObservedBlobStore', () => {
  it('reports verified writes and upload commits, never failed ones', async () => {
    const store = new ObservedBlobStore(new MemoryBlobStore(), bus, clock);
    const { data, digest } = await blob('observed');
    await expect(store.writeAll(digest, Buffer.from('tampered'))).rejects.toThrow();
    await store.write(digest, chunksOf(data, 3));
    const up = await blob('uploaded');
    const session = await store.openUpload(up.digest, 'u1');
    await session.append(up.data);
    expect(events).toHaveLength(1);
    await session.commit();
    expect(events).toEqual([
      { type: 'blob.written', at: 1_000, digest },
      { type: 'blob.written', at: 1_000, digest: up.digest },
    ]);
  });

  it('reports the bytes a read actually served', async () => {
    const store = new ObservedBlobStore(new MemoryBlobStore(), bus, clock);
    const { data, digest } = await blob('0123456789');
    await store.writeAll(digest, data);
    events.length = 0;
    expect((await drain(await store.read(digest, { offset: 2, limit: 5 }))).toString()).toBe('23456');
    await store.readAll(digest);
    expect(events).toEqual([
      { type: 'blob.read', at: 1_000, digest, bytes: 5 },
      { type: 'blob.read', at: 1_000, digest, bytes: 10 },
    ]);
  });

  it('lets go of the stored stream when the reader stops early, and reports what it served', async () => {
    const inner = new HeldReads();
    const store = new ObservedBlobStore(inner, bus, clock);
    const { digest } = await blob('0123456789');
    const out = await store.read(digest);
    inner.source.push(Buffer.from('0123'));
    await once(out, 'data');
    out.destroy();
    await once(inner.source, 'close');
    expect(inner.source.destroyed).toBe(true);
    expect(events).toEqual([{ type: 'blob.read', at: 1_000, digest, bytes: 4 }]);
  });

  it('passes a failing read on to the reader', async () => {
    const inner = new HeldReads();
    const store = new ObservedBlobStore(inner, bus, clock);
    const out = await store.read((await blob('x')).digest);
    const drained = drain(out);
    inner.source.destroy(new Error('the disk went away'));
    await expect(drained).rejects.toThrow('the disk went away');
  });

  it('reports a FindMissing call as one counted hit and one counted miss', async () => {
    const store = new ObservedBlobStore(new MemoryBlobStore(), bus, clock);
    const present = await blob('present');
    await store.writeAll(present.digest, present.data);
    events.length = 0;
    const absent = (await blob('absent')).digest;
    const other = (await blob('other')).digest;
    expect(await store.findMissing([present.digest, absent, emptyDigest(), other])).toEqual([absent, other]);
    expect(events).toEqual([
      { type: 'cache.lookup', at: 1_000, store: 'cas', hit: true, instance: '', count: 2 },
      { type: 'cache.lookup', at: 1_000, store: 'cas', hit: false, instance: '', count: 2 },
    ]);
    events.length = 0;
    await store.findMissing([present.digest]);
    expect(events).toEqual([{ type: 'cache.lookup', at: 1_000, store: 'cas', hit: true, instance: '', count: 1 }]);
  });

  describe('over a disk store', () => {
    let dir: string;
    let cleanup: () => Promise<void>;
    beforeEach(async () => ({ dir, cleanup } = await tempDir()));
    afterEach(async () => cleanup());

    it('passes localPath through only when the wrapped store has it', async () => {
      expect(new ObservedBlobStore(new MemoryBlobStore(), bus).localPath).toBeUndefined();
      const disk = await DiskBlobStore.open({ dir, budgetBytes: 1 << 20 });
      const store = new ObservedBlobStore(disk, bus, clock);
      const { data, digest } = await blob('linkable');
      await store.writeAll(digest, data);
      expect(await store.localPath!(digest)).toBe(disk.pathOf(digest));
      expect(store.stats().blobs).toBe(1);
      await store.close();
    });
  });
});
