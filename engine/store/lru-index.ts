// An in-memory least-recently-used index: key → weight (bytes for the CAS, 1 for the
// action cache), with counted pins. A Map keeps insertion order, so "touch" is
// delete + re-insert and the first entry is always the least recently used.

export interface Evicted {
  key: string;
  weight: number;
}

export interface HeavyEntry {
  key: string;
  weight: number;
  /** 0 = most recently used. */
  rank: number;
}

export class LruIndex {
  private entries = new Map<string, number>();
  private pins = new Map<string, number>();
  private total = 0;
  /** Bumped on every change of content or order; lets a persister know it is dirty. */
  private version = 0;

  get totalWeight(): number {
    return this.total;
  }

  get count(): number {
    return this.entries.size;
  }

  get changeCount(): number {
    return this.version;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  weight(key: string): number | undefined {
    return this.entries.get(key);
  }

  /** Marks `key` most recently used. Returns false when it is not indexed. */
  touch(key: string): boolean {
    const w = this.entries.get(key);
    if (w === undefined) return false;
    this.entries.delete(key);
    this.entries.set(key, w);
    this.version++;
    return true;
  }

  /** Adds `key` as most recently used (or touches it if present). Returns true when it was new. */
  add(key: string, weight: number): boolean {
    if (this.touch(key)) return false;
    this.entries.set(key, weight);
    this.total += weight;
    this.version++;
    return true;
  }

  remove(key: string): number | undefined {
    const w = this.entries.get(key);
    if (w === undefined) return undefined;
    this.entries.delete(key);
    this.total -= w;
    this.version++;
    return w;
  }

  /** Keys from least to most recently used. */
  keys(): IterableIterator<string> {
    return this.entries.keys();
  }

  /**
   * The `limit` heaviest entries, heaviest first (equal weights: more recently used first).
   * `rank` counts from the most recently used entry (0) towards the next to be evicted
   * (count - 1). One pass with a bounded min-heap: O(n log limit), no sort of the index.
   */
  heaviest(limit: number): HeavyEntry[] {
    const k = Math.max(0, Math.floor(limit));
    if (k === 0) return [];
    // heap[0] is the lightest kept entry; "lighter" ties go to the less recently used.
    const heap: HeavyEntry[] = [];
    const lighter = (a: HeavyEntry, b: HeavyEntry) => a.weight < b.weight || (a.weight === b.weight && a.rank > b.rank);
    const last = this.entries.size - 1;
    let i = 0;
    for (const [key, weight] of this.entries) {
      const e = { key, weight, rank: last - i++ };
      if (heap.length < k) {
        heap.push(e);
        siftUp(heap, heap.length - 1, lighter);
      } else if (lighter(heap[0]!, e)) {
        heap[0] = e;
        siftDown(heap, 0, lighter);
      }
    }
    return heap.sort((a, b) => (lighter(a, b) ? 1 : lighter(b, a) ? -1 : 0));
  }

  /** Pins are counted: each call needs its own release. Keys need not be indexed yet. */
  pin(keys: Iterable<string>): () => void {
    const held = [...keys];
    for (const k of held) this.pins.set(k, (this.pins.get(k) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const k of held) {
        const n = (this.pins.get(k) ?? 1) - 1;
        if (n <= 0) this.pins.delete(k);
        else this.pins.set(k, n);
      }
    };
  }

  isPinned(key: string): boolean {
    return this.pins.has(key);
  }

  /**
   * Removes least recently used entries that are neither pinned nor in `keep` until the
   * total weight is at most `budget`. Stops early (still over budget) when only such
   * entries are left. Returns what was removed, oldest first.
   */
  evictOver(budget: number, keep: ReadonlySet<string> = new Set()): Evicted[] {
    if (this.total <= budget) return [];
    const victims: Evicted[] = [];
    let excess = this.total - budget;
    for (const [key, weight] of this.entries) {
      if (excess <= 0) break;
      if (this.pins.has(key) || keep.has(key)) continue;
      victims.push({ key, weight });
      excess -= weight;
    }
    for (const v of victims) this.remove(v.key);
    return victims;
  }
}

type Lighter<T> = (a: T, b: T) => boolean;

function siftUp<T>(heap: T[], i: number, lighter: Lighter<T>): void {
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!lighter(heap[i]!, heap[parent]!)) return;
    [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
    i = parent;
  }
}

function siftDown<T>(heap: T[], i: number, lighter: Lighter<T>): void {
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let least = i;
    if (l < heap.length && lighter(heap[l]!, heap[least]!)) least = l;
    if (r < heap.length && lighter(heap[r]!, heap[least]!)) least = r;
    if (least === i) return;
    [heap[i], heap[least]] = [heap[least]!, heap[i]!];
    i = least;
  }
}
