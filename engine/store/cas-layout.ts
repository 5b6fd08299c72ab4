// Where a content-addressed entry lives on disk: {root}/{fn}/{hash[0..2]}/{hash}-{size}.
// The name carries hash and size, so a directory scan rebuilds the index without opening
// a file. Used by the CAS and (with a different root per instance) the action cache.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DIGEST_FUNCTIONS,
  SUPPORTED_DIGEST_FUNCTIONS,
  digestFunctionByName,
  digestKey,
  validateHashAndSize,
  type BlobDigest,
} from '../digest';

export function shardDir(root: string, d: BlobDigest): string {
  return join(root, d.fn, d.hash.slice(0, 2));
}

export function entryPath(root: string, d: BlobDigest): string {
  return join(shardDir(root, d), `${d.hash}-${d.size}`);
}

/** Parses a digestKey ("sha256/abc…/12") back into a digest, or undefined when malformed. */
export function parseDigestKey(key: string): BlobDigest | undefined {
  const [fn, hash, sizeText, extra] = key.split('/');
  if (extra !== undefined || !fn || !hash || !sizeText) return undefined;
  return checked(fn, hash, sizeText);
}

function parseEntryName(fn: string, name: string): BlobDigest | undefined {
  const dash = name.indexOf('-');
  if (dash < 0) return undefined;
  return checked(fn, name.slice(0, dash), name.slice(dash + 1));
}

function checked(fn: string, hash: string, sizeText: string): BlobDigest | undefined {
  const info = digestFunctionByName(fn);
  if (!info || !/^\d+$/.test(sizeText)) return undefined;
  const size = Number(sizeText);
  try {
    validateHashAndSize(hash, size, info);
  } catch {
    return undefined;
  }
  return { fn: info.name, hash, size };
}

/**
 * Every well-named entry under `root`: digestKey → size. Foreign files are skipped, and
 * so, unless asked otherwise, is each function's empty blob (always present in the CAS,
 * never indexed).
 */
export async function scanEntries(root: string, { includeEmpty = false } = {}): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (const fn of SUPPORTED_DIGEST_FUNCTIONS) {
    for (const shard of await listDir(join(root, fn))) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      for (const name of await listDir(join(root, fn, shard))) {
        const d = parseEntryName(fn, name);
        if (!d || !d.hash.startsWith(shard)) continue;
        if (!includeEmpty && d.size === 0 && d.hash === DIGEST_FUNCTIONS[fn].emptyHash) continue;
        found.set(digestKey(d), d.size);
      }
    }
  }
  return found;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}
