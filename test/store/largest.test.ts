// BlobStore.largest: the dashboard's "Largest blobs" list, from each store's own index.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { EventBus, type KilnEvent } from '../../engine/events/event-bus';
import type { BlobStore } from '../../engine/store/blob-store';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { LruIndex } from '../../engine/store/lru-index';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { ObservedBlobStore } from '../../engine/store/observed-store';
import { blob, tempDir } from './helpers';

describe('LruIndex.heaviest', () => {
  it('agrees with a full sort on a big random index, for every limit', () => {
    const lru = new LruIndex();
    // A small deterministic PRNG: many equal weights, so ties are exercised too.
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 5_000; i++) lru.add(`k${i}`, next() % 300);
    for (let i = 0; i < 500; i++) lru.touch(`k${next() % 5_000}`);
    const order = [...lru.keys()];
    const reference = order
      .map((key, i) => ({ key, weight: lru.weight(key)!, rank: order.length - 1 - i }))
      .sort((a, b) => b.weight - a.weight || a.rank - b.rank);
    for (const limit of [1, 2, 7, 20, 200, 5_000, 9_999]) {
      expect(lru.heaviest(limit)).toEqual(reference.slice(0, limit));
    }
  });

  it('ranks by recency, breaks ties towards the most recently used, and changes nothing', () => {
    const lru = new LruIndex();
    lru.add('old', 50);
    lru.add('big', 100);
    lru.add('tie', 50);
    lru.add('small', 1);
    const version = lru.changeCount;
    expect(lru.heaviest(3)).toEqual([
      { key: 'big', weight: 100, rank: 2 },
      { key: 'tie', weight: 50, rank: 1 },
      { key: 'old', weight: 50, rank: 3 },
    ]);
    expect(lru.changeCount).toBe(version);
    expect([...lru.keys()]).toEqual(['old', 'big', 'tie', 'small']);
    expect(lru.heaviest(0)).toEqual([]);
    expect(new LruIndex().heaviest(5)).toEqual([]);
  });
});

async function fill(store: BlobStore, texts: string[]) {
  const out = [];
  for (const t of texts) {
    const b = await blob(t);
    await store.writeAll(b.digest, b.data);
    out.push(b.digest);
  }
  return out;
}

describe('DiskBlobStore.largest', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const open: DiskBlobStore[] = [];
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    await cleanup();
  });
  const openStore = async (budgetBytes = 1 << 30) => {
    const s = await DiskBlobStore.open({ dir, budgetBytes, clock: new ManualClock() });
    open.push(s);
    return s;
  };

  it('lists the largest blobs with their recency, largest first, across restarts', async () => {
    const store = await openStore();
    const [a, b, c, d] = await fill(store, ['x'.repeat(10), 'y'.repeat(40), 'z'.repeat(20), 'w'.repeat(30)]);
    await store.has(b!); // b becomes the most recently used
    expect(store.largest(3)).toEqual([
      { digest: b, size: 40, lastUsedRank: 0 },
      { digest: d, size: 30, lastUsedRank: 1 },
      { digest: c, size: 20, lastUsedRank: 2 },
    ]);
    expect(store.largest(100).map((e) => e.digest)).toEqual([b, d, c, a]);
    expect(store.largest(0)).toEqual([]);
    await store.close();
    const again = await openStore();
    expect(again.largest(1)).toEqual([{ digest: b, size: 40, lastUsedRank: expect.any(Number) }]);
  });

  it('does not touch what it lists: eviction order is unchanged', async () => {
    const store = await openStore(60);
    const [big, mid] = await fill(store, ['a'.repeat(30), 'b'.repeat(20)]);
    expect(store.largest(1)[0]!.digest).toEqual(big);
    // Over budget: the least recently used goes. Had largest() touched `big`, `mid` would.
    await fill(store, ['c'.repeat(20)]);
    expect(await store.has(big!)).toBe(false);
    expect(await store.has(mid!)).toBe(true);
    expect(store.largest(5).map((e) => e.size)).toEqual([20, 20]);
  });
});

describe('MemoryBlobStore.largest and ObservedBlobStore', () => {
  it('sorts the memory store by size', async () => {
    const store = new MemoryBlobStore();
    const [a, b] = await fill(store, ['short', 'a much longer blob']);
    expect(store.largest(5)).toEqual([
      { digest: b, size: b!.size },
      { digest: a, size: a!.size },
    ]);
    expect(store.largest(1)).toHaveLength(1);
  });

  it('passes largest through without reporting reads, and only when the inner store has it', async () => {
    const events: KilnEvent[] = [];
    const bus = new EventBus();
    bus.subscribe((e) => events.push(e));
    const inner = new MemoryBlobStore();
    const [a] = await fill(inner, ['observed']);
    const observed = new ObservedBlobStore(inner, bus);
    expect(observed.largest?.(3)).toEqual([{ digest: a, size: a!.size }]);
    expect(events).toEqual([]);

    const { largest: _omitted, ...rest } = Object.getOwnPropertyDescriptors(MemoryBlobStore.prototype);
    const bare = Object.create(Object.prototype, rest) as BlobStore;
    expect(bare.largest).toBeUndefined();
    expect(new ObservedBlobStore(bare, bus).largest).toBeUndefined();
  });
});
