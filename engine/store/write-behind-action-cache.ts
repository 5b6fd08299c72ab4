// An ActionCacheStore decorator for the entries Kiln writes itself after
// running an action. Such an entry is nobody's acknowledged write: the
// Execute response carries the result, and the entry only spares the next
// build a run. So `putSoon` makes it visible at once (get answers it from
// memory) and writes it to the store behind the response, instead of making
// every uncached action wait for the store's fsyncs (~2 ms here). `put` (the
// UpdateActionResult path) stays fully durable before it resolves. A crash in
// the moment between the two loses at most such an entry: the action runs again.
import { digestKey, type BlobDigest } from '../digest';
import { reapi } from '../proto';
import type { ActionCacheStore, StoredActionResult } from './action-cache-store';

interface Pending {
  /** Encoded, so a caller mutating what it got never changes the entry. */
  bytes: Uint8Array;
  written: Promise<void>;
}

export class WriteBehindActionCache implements ActionCacheStore {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly inner: ActionCacheStore,
    private readonly log: (line: string) => void = () => {},
  ) {}

  async get(instance: string, actionDigest: BlobDigest): Promise<reapi.ActionResult | undefined> {
    const waiting = this.pending.get(keyOf(instance, actionDigest));
    if (waiting) return reapi.ActionResult.decode(waiting.bytes);
    return this.inner.get(instance, actionDigest);
  }

  /** The entry with its encoded bytes (GetActionResult answers with them as they are); a pending one from memory. */
  async getWithBytes(instance: string, actionDigest: BlobDigest): Promise<StoredActionResult | undefined> {
    const waiting = this.pending.get(keyOf(instance, actionDigest));
    if (waiting) return { result: reapi.ActionResult.decode(waiting.bytes), bytes: waiting.bytes };
    if (this.inner.getWithBytes) return this.inner.getWithBytes(instance, actionDigest);
    const result = await this.inner.get(instance, actionDigest);
    return result && { result, bytes: reapi.ActionResult.encode(result).finish() };
  }

  /** Durable before it resolves; after any write-behind of the same entry, so the later write wins. */
  async put(instance: string, actionDigest: BlobDigest, result: reapi.IActionResult): Promise<void> {
    await this.pending.get(keyOf(instance, actionDigest))?.written;
    await this.inner.put(instance, actionDigest, result);
  }

  /**
   * Visible to get() now, written to the store soon. A failed write is logged
   * and forgotten: it only costs the next build a cache miss.
   */
  putSoon(instance: string, actionDigest: BlobDigest, result: reapi.IActionResult): void {
    const key = keyOf(instance, actionDigest);
    const before = this.pending.get(key)?.written ?? Promise.resolve();
    const entry: Pending = { bytes: reapi.ActionResult.encode(reapi.ActionResult.create(result)).finish(), written: Promise.resolve() };
    entry.written = before
      .then(() => this.inner.put(instance, actionDigest, result))
      .catch((err: Error) => this.log(`kiln: could not write an action-cache entry: ${err.message}`))
      .finally(() => {
        if (this.pending.get(key) === entry) this.pending.delete(key);
      });
    this.pending.set(key, entry);
  }

  async delete(instance: string, actionDigest: BlobDigest): Promise<boolean> {
    const key = keyOf(instance, actionDigest);
    const waiting = this.pending.get(key);
    this.pending.delete(key);
    await waiting?.written;
    return (await this.inner.delete(instance, actionDigest)) || waiting !== undefined;
  }

  /** Entries in the store; one still being written counts once it is there. */
  size(): number {
    return this.inner.size();
  }

  /** Resolves when every write-behind so far has reached the store (or failed). */
  async flush(): Promise<void> {
    await Promise.all([...this.pending.values()].map((p) => p.written));
  }

  async close(): Promise<void> {
    await this.flush();
    await this.inner.close();
  }
}

function keyOf(instance: string, d: BlobDigest): string {
  return `${instance}\u0000${digestKey(d)}`;
}
