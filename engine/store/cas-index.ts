// The CAS's LRU index plus a presence map per digest function, for
// FindMissingBlobs, which asks about 10,000 digests a call. Composing a
// "fn/hash/size" key for each and hashing that fresh string into the LRU map was
// most of its index work; hashing even the bare 64-character hash string the
// request decoded costs V8 a trip to its runtime per digest. So the presence map
// is keyed by the hash's first 28 bits, a small integer read from its first
// seven hex digits, and the full hash and size are compared on the entry
// (entries sharing a prefix are chained). The entry hands back the LRU key it was
// indexed under, an existing string whose hash V8 has cached, so marking it
// recently used builds no key either.
import type { DigestFunctionName } from '../digest';
import { LruIndex } from './lru-index';

interface Present {
  /** The key in the LRU order (digestKey of the blob). */
  key: string;
  hash: string;
  size: number;
  /** The next entry whose hash starts with the same seven hex digits. */
  next: Present | undefined;
}

export class CasIndex extends LruIndex {
  private readonly byFunction = new Map<string, Map<number, Present>>();

  /** The LRU key of the blob with this hash and size, or undefined when it is not indexed. */
  lookup(fn: DigestFunctionName, hash: string, size: number): string | undefined {
    let e = this.byFunction.get(fn)?.get(prefixOf(hash));
    // The size is part of the digest: a right hash with a wrong size is another (absent) blob.
    while (e !== undefined && (e.hash !== hash || e.size !== size)) e = e.next;
    return e?.key;
  }

  override add(key: string, weight: number): boolean {
    const added = super.add(key, weight);
    if (added) {
      const [fn, hash, size] = splitKey(key);
      let byPrefix = this.byFunction.get(fn);
      if (!byPrefix) this.byFunction.set(fn, (byPrefix = new Map()));
      const p = prefixOf(hash);
      byPrefix.set(p, { key, hash, size, next: byPrefix.get(p) });
    }
    return added;
  }

  override remove(key: string): number | undefined {
    const w = super.remove(key);
    if (w !== undefined) {
      const [fn, hash] = splitKey(key);
      const byPrefix = this.byFunction.get(fn);
      const p = prefixOf(hash);
      let prev: Present | undefined;
      for (let e = byPrefix?.get(p); e !== undefined; prev = e, e = e.next) {
        if (e.key !== key) continue;
        if (prev) prev.next = e.next;
        else if (e.next) byPrefix!.set(p, e.next);
        else byPrefix!.delete(p);
        break;
      }
    }
    return w;
  }
}

/** Value of each lower-case hex digit by char code; anything else reads as 0 (the full hash is compared anyway). */
const HEX_VALUE = new Uint8Array(128);
for (let i = 0; i < 16; i++) HEX_VALUE['0123456789abcdef'.charCodeAt(i)] = i;

/** The first seven hex digits as an integer: 28 bits, always a V8 small integer. */
function prefixOf(hash: string): number {
  let n = 0;
  for (let i = 0; i < 7 && i < hash.length; i++) n = (n << 4) | (HEX_VALUE[hash.charCodeAt(i) & 127] ?? 0);
  return n;
}

/** "sha256/abc…/12" → ["sha256", "abc…", 12]; CAS keys are digestKeys, so no validation here. */
function splitKey(key: string): [string, string, number] {
  const a = key.indexOf('/');
  const b = key.indexOf('/', a + 1);
  return [key.slice(0, a), key.slice(a + 1, b), Number(key.slice(b + 1))];
}
