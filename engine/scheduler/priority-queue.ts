// Waiting work ordered by priority (lower runs sooner), first-in first-out
// within a priority. Kept as a sorted array: queues are bounded (config.queueSize)
// and removal of an arbitrary entry (cancellation, re-prioritising) is common.

interface Entry<T> {
  item: T;
  priority: number;
  seq: number;
}

export class PriorityQueue<T> {
  private entries: Entry<T>[] = [];
  private seq = 0;

  get size(): number {
    return this.entries.length;
  }

  push(item: T, priority: number): void {
    const entry = { item, priority, seq: this.seq++ };
    this.entries.splice(this.insertionIndex(entry), 0, entry);
  }

  shift(): T | undefined {
    return this.entries.shift()?.item;
  }

  remove(item: T): boolean {
    const i = this.entries.findIndex((e) => e.item === item);
    if (i < 0) return false;
    this.entries.splice(i, 1);
    return true;
  }

  /** Moves `item` to `priority` if that is sooner, keeping its place among equals by arrival. */
  raise(item: T, priority: number): void {
    const i = this.entries.findIndex((e) => e.item === item);
    if (i < 0 || this.entries[i].priority <= priority) return;
    const [entry] = this.entries.splice(i, 1);
    entry.priority = priority;
    this.entries.splice(this.insertionIndex(entry), 0, entry);
  }

  /** Items in the order they will run. */
  items(): T[] {
    return this.entries.map((e) => e.item);
  }

  private insertionIndex(entry: Entry<T>): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.entries[mid];
      if (e.priority < entry.priority || (e.priority === entry.priority && e.seq < entry.seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
