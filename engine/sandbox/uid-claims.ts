// Two Kilns on one host (two data folders) must not hand out the same uids:
// each would see, signal and sweep the other's actions. So each Kiln claims
// its range for as long as it runs, with a lock file under /run/kiln-uids/
// (root's own, on tmpfs, so a reboot forgets every claim; a claim whose Kiln
// died is taken over, as data-dir-lock.ts does for the data folder).
// Without action-uids, Kiln takes a block of 256 from a wide default span:
// the block its data folder's hash names, or the next free one.
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, rmdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../config-load';
import { DataDirLockedError, lockDataDir } from '../util/data-dir-lock';
import type { UidRange } from './action-identities';

/** The span default blocks come from: 4096 blocks of 256, above systemd's container range and below its foreign range. */
export const DEFAULT_UID_SPAN: UidRange = { first: 2_000_000_000, last: 2_000_000_000 + 4096 * 256 - 1 };
export const DEFAULT_BLOCK_SIZE = 256;

export interface UidClaim {
  range: UidRange;
  release(): void;
}

export interface ClaimOptions {
  /** Where the claims live; /run/kiln-uids by default. */
  dir?: string;
  /** Kiln's own uid: the claims folder must be its own. */
  owner?: number;
}

/** Claims `configured` (or, when undefined, a free default block chosen from `dataDir`) for this Kiln. */
export function claimUids(configured: UidRange | undefined, dataDir: string, opts: ClaimOptions = {}): UidClaim {
  const dir = opts.dir ?? '/run/kiln-uids';
  claimsFolder(dir, opts.owner ?? process.getuid?.() ?? 0);
  if (configured) {
    const claim = tryClaim(dir, configured);
    if (typeof claim === 'string') throw new ConfigError(`action-uids: ${span(configured)} ${claim}; give each Kiln on this host its own range with --action-uids`);
    return claim;
  }
  const blocks = (DEFAULT_UID_SPAN.last - DEFAULT_UID_SPAN.first + 1) / DEFAULT_BLOCK_SIZE;
  const start = createHash('sha256').update(resolve(dataDir)).digest().readUInt32BE(0) % blocks;
  for (let i = 0; i < blocks; i++) {
    const first = DEFAULT_UID_SPAN.first + ((start + i) % blocks) * DEFAULT_BLOCK_SIZE;
    const claim = tryClaim(dir, { first, last: first + DEFAULT_BLOCK_SIZE - 1 });
    if (typeof claim !== 'string') return claim;
  }
  throw new ConfigError(`action-uids: every block of ${span(DEFAULT_UID_SPAN)} is claimed by another Kiln here; choose a range with --action-uids`);
}

/** The claim, or why not. */
function tryClaim(dir: string, range: UidRange, attempt = 0): UidClaim | string {
  const folder = join(dir, span(range));
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  try {
    const lock = lockDataDir(folder);
    return {
      range,
      release: () => {
        lock.release();
        // Not left behind; a folder someone claimed meanwhile is not empty and stays.
        try {
          rmdirSync(folder);
        } catch {
          /* claimed again meanwhile, or already gone */
        }
      },
    };
  } catch (err) {
    // Another Kiln's release removed the folder between our mkdir and our lock: once more.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt === 0) return tryClaim(dir, range, 1);
    if (!(err instanceof DataDirLockedError)) throw err;
    return /pid (\d+)/.exec(err.message) ? `is in use by another Kiln (pid ${/pid (\d+)/.exec(err.message)![1]})` : 'is in use by another Kiln in this process';
  }
}

/** /run/kiln-uids: made 0700 by Kiln (only root can make it in /run, but it is checked all the same). */
function claimsFolder(dir: string, owner: number): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== owner || st.mode & 0o022) {
    throw new ConfigError(`${dir} is not a folder of Kiln's that only Kiln may write; remove it (or find who made it) and start again`);
  }
}

function span(r: UidRange): string {
  return `${r.first}-${r.last}`;
}
