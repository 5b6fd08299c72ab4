// The CAS's LRU index plus a presence map per digest function keyed by the hash
// alone. FindMissingBlobs asks about 10,000 digests a call: composing a
// "fn/hash/size" key for each and hashing it into the LRU map was most of its
// index work, while the hash string the request decoded can be looked up as it is.
// The entry hands back the LRU key it was indexed under, an existing string whose
// hash V8 has cached, so marking it recently used costs no key building either.
import type { DigestFunctionName } from '../digest';
import { LruIndex } from './lru-index';

interface Present {
  /** The key in the LRU order (digestKey of the blob). */
  key: string;
  size: number;
}

export class CasIndex extends LruIndex {
  private readonly byFunction = new Map<string, Map<string, Present>>();

  /** The LRU key of the blob with this hash and size, or undefined when it is not indexed. */
  lookup(fn: DigestFunctionName, hash: string, size: number): string | undefined {
    const e = this.byFunction.get(fn)?.get(hash);
    // The size is part of the digest: a right hash with a wrong size is another (absent) blob.
    return e !== undefined && e.size === size ? e.key : undefined;
  }

  override add(key: string, weight: number): boolean {
    const added = super.add(key, weight);
    if (added) {
      const [fn, hash, size] = splitKey(key);
      let byHash = this.byFunction.get(fn);
      if (!byHash) this.byFunction.set(fn, (byHash = new Map()));
      byHash.set(hash, { key, size });
    }
    return added;
  }

  override remove(key: string): number | undefined {
    const w = super.remove(key);
    if (w !== undefined) {
      const [fn, hash] = splitKey(key);
      const byHash = this.byFunction.get(fn);
      // Only the entry of this very key: the same hash under another size is someone else's.
      if (byHash?.get(hash)?.key === key) byHash.delete(hash);
    }
    return w;
  }
}

/** "sha256/abc…/12" → ["sha256", "abc…", 12]; CAS keys are digestKeys, so no validation here. */
function splitKey(key: string): [string, string, number] {
  const a = key.indexOf('/');
  const b = key.indexOf('/', a + 1);
  return [key.slice(0, a), key.slice(a + 1, b), Number(key.slice(b + 1))];
}
