// An action-cache decorator that keeps the stored entry when an action runs
// again and comes out the same: same outputs, exit code and logs, only its
// execution metadata (worker, timestamps) new. Writing it anyway costs a
// write-ahead-log record and, later, a new file in place of an old one with the
// same meaning; that happens on every action of a build run with
// --noremote_accept_cached, or of a test run again. The entry kept was
// acknowledged when it was written, so nothing about durability changes, and a
// later hit reports the run that made it. A put whose result differs in
// anything else, or whose key holds no entry, goes through.
import type { BlobDigest } from '../digest';
import { reapi } from '../proto';
import { ActionCacheDecorator } from './action-cache-decorator';
import type { ActionCacheStore } from './action-cache-store';

export class UnchangedResultsActionCache extends ActionCacheDecorator {
  /** Its get() is the inner store's, so the encoded form comes from there too, where the inner store has it. */
  readonly getWithBytes?: ActionCacheStore['getWithBytes'];

  constructor(inner: ActionCacheStore) {
    super(inner);
    if (inner.getWithBytes) this.getWithBytes = (instance, actionDigest) => inner.getWithBytes!(instance, actionDigest);
  }

  override async put(instance: string, actionDigest: BlobDigest, result: reapi.IActionResult): Promise<void> {
    // Reading it also marks the entry as just used, as the put would have.
    const stored = await this.inner.get(instance, actionDigest);
    if (stored && sameApartFromMetadata(stored, result)) return;
    await this.inner.put(instance, actionDigest, result);
  }
}

/** Whether two results say the same once their execution metadata is left out (compared by their encodings). */
export function sameApartFromMetadata(a: reapi.IActionResult, b: reapi.IActionResult): boolean {
  return Buffer.from(encodeWithoutMetadata(a)).equals(encodeWithoutMetadata(b));
}

function encodeWithoutMetadata(result: reapi.IActionResult): Uint8Array {
  return reapi.ActionResult.encode(reapi.ActionResult.create({ ...result, executionMetadata: null })).finish();
}
