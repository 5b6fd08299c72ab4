// What Kiln knows about remote assets: URI (+ the qualifiers that narrow it) →
// digest, and SHA-256 checksum → digest (an SRI names no size, the CAS needs one).
// Kept in one JSON file, rewritten atomically after each change, so a fetch
// answered once is answered from the CAS after a restart too. The CAS may have
// evicted the bytes since; callers check before trusting an entry.
import { readFileSync } from 'node:fs';
import type { BlobDigest, DigestFunctionName } from '../digest';
import { writeFileAtomic } from '../util/atomic-file';

export type AssetKind = 'blob' | 'directory';

export interface AssetEntry {
  kind: AssetKind;
  digest: BlobDigest;
  /** When it was downloaded or pushed (ms since the epoch): oldest_content_accepted compares against it. */
  storedAt: number;
  /** Pushed with expire_at: not served after this (ms since the epoch). */
  expiresAt?: number;
}

interface IndexFile {
  version: 1;
  uris: Record<string, AssetEntry>;
  checksums: Record<string, AssetEntry>;
}

/** Entries kept per map; the oldest go first beyond it (a bound on the file, not the CAS). */
const MAX_ENTRIES = 50_000;

export class AssetIndex {
  private uris = new Map<string, AssetEntry>();
  private checksums = new Map<string, AssetEntry>();
  private saving: Promise<void> = Promise.resolve();

  /** `path` undefined: in memory only (tests). */
  constructor(private readonly path?: string) {
    if (!path) return;
    let file: IndexFile | undefined;
    try {
      file = JSON.parse(readFileSync(path, 'utf8')) as IndexFile;
    } catch {
      return; // Missing or unreadable: the index is only a cache of what the CAS holds.
    }
    if (file?.version !== 1) return;
    this.uris = new Map(Object.entries(file.uris ?? {}));
    this.checksums = new Map(Object.entries(file.checksums ?? {}));
  }

  byUri(kind: AssetKind, uri: string, cacheKey: string): AssetEntry | undefined {
    return this.uris.get(uriKey(kind, uri, cacheKey));
  }

  byChecksum(kind: AssetKind, fn: DigestFunctionName, sha256: string): AssetEntry | undefined {
    return this.checksums.get(`${kind}:${fn}:${sha256}`);
  }

  /** Records `entry` under each URI, and under its checksum when known; saves in the background. */
  record(uris: string[], cacheKey: string, entry: AssetEntry, sha256?: string): Promise<void> {
    for (const uri of uris) setBounded(this.uris, uriKey(entry.kind, uri, cacheKey), entry);
    if (sha256) setBounded(this.checksums, `${entry.kind}:${entry.digest.fn}:${sha256}`, entry);
    return this.save();
  }

  /** Waits for pending saves. */
  flush(): Promise<void> {
    return this.saving;
  }

  private save(): Promise<void> {
    const path = this.path;
    if (!path) return Promise.resolve();
    // One write at a time, each with everything known when it starts.
    this.saving = this.saving.then(() => {
      const file: IndexFile = { version: 1, uris: Object.fromEntries(this.uris), checksums: Object.fromEntries(this.checksums) };
      return writeFileAtomic(path, JSON.stringify(file));
    }).catch(() => undefined); // A failed save costs a re-download later, nothing more.
    return this.saving;
  }
}

function uriKey(kind: AssetKind, uri: string, cacheKey: string): string {
  return `${kind}:${uri}\n${cacheKey}`;
}

function setBounded(map: Map<string, AssetEntry>, key: string, entry: AssetEntry): void {
  map.delete(key); // Re-inserting moves it to the young end.
  map.set(key, entry);
  while (map.size > MAX_ENTRIES) map.delete(map.keys().next().value!);
}
