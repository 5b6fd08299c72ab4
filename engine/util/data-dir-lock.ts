// One engine per data folder. Two engines on one folder would each clear the
// other's build/ at start and race on the store's index, so the second one
// refuses to start and says who holds the folder. A lock left by a crashed
// engine (its pid is gone) is taken over.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isProcessRunning } from './process-running';

export class DataDirLockedError extends Error {}

export interface DataDirLock {
  release(): void;
}

const LOCK_FILE = 'kiln.lock';
/** Folders locked by engines in this process (the pid alone cannot tell them apart). */
const heldHere = new Set<string>();

export function lockDataDir(dataDir: string, pid = process.pid): DataDirLock {
  const file = join(dataDir, LOCK_FILE);
  if (heldHere.has(file)) {
    throw new DataDirLockedError(`another Kiln engine in this process is using the data folder ${dataDir}; give this one its own --data-dir`);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, `${pid}\n`);
      closeSync(fd);
      heldHere.add(file);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          heldHere.delete(file);
          try {
            if (readFileSync(file, 'utf8').trim() === String(pid)) unlinkSync(file);
          } catch {
            /* already gone */
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number.parseInt(readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(holder) && holder !== pid && isProcessRunning(holder)) {
        throw new DataDirLockedError(
          `another Kiln (pid ${holder}) is using the data folder ${dataDir}; stop it, or give this one its own folder with --data-dir`,
        );
      }
      // Stale lock from a crash (or our own pid reused): take it over.
      unlinkSync(file);
    }
  }
  throw new DataDirLockedError(`could not lock the data folder ${dataDir}`);
}

