import { describe, expect, it } from 'vitest';
import { digestKey, type BlobDigest } from '../../engine/digest';
import { CasIndex } from '../../engine/store/cas-index';

const d = (fn: 'sha256' | 'blake3', c: string, size: number): BlobDigest => ({ fn, hash: c.repeat(64), size });

describe('CasIndex', () => {
  it('finds a blob by function, hash and size, and answers with its LRU key', () => {
    const idx = new CasIndex();
    const a = d('sha256', 'a', 3);
    idx.add(digestKey(a), a.size);
    expect(idx.lookup('sha256', a.hash, 3)).toBe(digestKey(a));
    expect(idx.lookup('sha256', a.hash, 4)).toBeUndefined(); // same hash, other size: another blob
    expect(idx.lookup('blake3', a.hash, 3)).toBeUndefined(); // same hex under another function
  });

  it('forgets removed and evicted blobs, keeps exact LRU order for touches by the returned key', () => {
    const idx = new CasIndex();
    const [a, b, c] = [d('sha256', 'a', 10), d('blake3', 'b', 10), d('sha256', 'c', 10)];
    for (const x of [a, b, c]) idx.add(digestKey(x), x.size);
    idx.touch(idx.lookup('sha256', a.hash, 10)!);
    expect([...idx.keys()]).toEqual([b, c, a].map(digestKey));
    expect(idx.evictOver(20)).toEqual([{ key: digestKey(b), weight: 10 }]);
    expect(idx.lookup('blake3', b.hash, 10)).toBeUndefined();
    idx.remove(digestKey(c));
    expect(idx.lookup('sha256', c.hash, 10)).toBeUndefined();
    expect(idx.lookup('sha256', a.hash, 10)).toBe(digestKey(a));
  });

  it('does not drop a blob when a key with the same hash but another size is removed', () => {
    const idx = new CasIndex();
    const a = d('sha256', 'a', 5);
    idx.add(digestKey(a), 5);
    expect(idx.remove(digestKey({ ...a, size: 6 }))).toBeUndefined();
    expect(idx.lookup('sha256', a.hash, 5)).toBe(digestKey(a));
  });
});

describe('CasIndex with hashes that share a prefix', () => {
  it('tells apart, forgets and keeps blobs whose hashes begin alike', () => {
    const idx = new CasIndex();
    const h = (tail: string) => `abcdef0${tail.repeat(57)}`;
    const [x, y, z] = ['1', '2', '3'].map((t): BlobDigest => ({ fn: 'sha256', hash: h(t), size: 7 }));
    for (const b of [x!, y!, z!]) idx.add(digestKey(b), b.size);
    expect(idx.lookup('sha256', h('4'), 7)).toBeUndefined();
    for (const b of [x!, y!, z!]) expect(idx.lookup('sha256', b.hash, 7)).toBe(digestKey(b));
    idx.remove(digestKey(y!)); // middle of the chain
    expect(idx.lookup('sha256', y!.hash, 7)).toBeUndefined();
    idx.remove(digestKey(z!)); // head of the chain (added last)
    expect(idx.lookup('sha256', z!.hash, 7)).toBeUndefined();
    expect(idx.lookup('sha256', x!.hash, 7)).toBe(digestKey(x!));
    idx.remove(digestKey(x!));
    expect(idx.lookup('sha256', x!.hash, 7)).toBeUndefined();
    idx.add(digestKey(y!), 7);
    expect(idx.lookup('sha256', y!.hash, 7)).toBe(digestKey(y!));
  });
});
