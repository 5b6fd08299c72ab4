import { describe, expect, it } from 'vitest';
import { LruIndex } from '../../engine/store/lru-index';

describe('LruIndex', () => {
  it('orders by use and evicts the oldest unpinned entries down to the budget', () => {
    const lru = new LruIndex();
    lru.add('a', 10);
    lru.add('b', 10);
    lru.add('c', 10);
    expect(lru.add('a', 10)).toBe(false); // re-adding touches
    expect([...lru.keys()]).toEqual(['b', 'c', 'a']);
    const release = lru.pin(['b']);
    expect(lru.evictOver(15, new Set(['a']))).toEqual([{ key: 'c', weight: 10 }]);
    expect(lru.totalWeight).toBe(20); // b pinned, a kept: over budget is allowed
    release();
    expect(lru.evictOver(15)).toEqual([{ key: 'b', weight: 10 }]);
    expect([...lru.keys()]).toEqual(['a']);
    expect(lru.touch('zzz')).toBe(false);
  });

  it('counts changes so a persister can tell when it is dirty', () => {
    const lru = new LruIndex();
    const v0 = lru.changeCount;
    lru.add('a', 1);
    lru.touch('a');
    lru.remove('a');
    expect(lru.changeCount).toBe(v0 + 3);
    lru.remove('a');
    expect(lru.changeCount).toBe(v0 + 3);
  });
});
