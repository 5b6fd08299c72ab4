// The base of ActionCacheStore decorators (unchanged results, the upstream's
// read-through): forwards everything to the store it wraps, so a decorator
// overrides only what it changes. getWithBytes is left out: through it a
// caller would pass by a decorator's own get(); one whose get() is the inner
// store's may forward it itself.
import type { BlobDigest } from '../digest';
import type { reapi } from '../proto';
import type { ActionCacheStore } from './action-cache-store';

export abstract class ActionCacheDecorator implements ActionCacheStore {
  constructor(protected readonly inner: ActionCacheStore) {}

  get(instance: string, actionDigest: BlobDigest): Promise<reapi.ActionResult | undefined> {
    return this.inner.get(instance, actionDigest);
  }

  put(instance: string, actionDigest: BlobDigest, result: reapi.IActionResult): Promise<void> {
    return this.inner.put(instance, actionDigest, result);
  }

  delete(instance: string, actionDigest: BlobDigest): Promise<boolean> {
    return this.inner.delete(instance, actionDigest);
  }

  size(): number {
    return this.inner.size();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
