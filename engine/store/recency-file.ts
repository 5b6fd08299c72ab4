// Persists an LRU order to a text file (one key per line, least recently used first)
// so a restart keeps eviction order without opening a single blob. The file is only a
// hint: stores rebuild *what* exists from a directory scan and use this for *order*.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Clock } from '../clock';
import { writeFileAtomic } from '../util/atomic-file';
import type { LruIndex } from './lru-index';

const HEADER = 'kiln-recency v1';

/** Keys in saved order; an absent or foreign file yields []. */
export async function loadRecency(file: string): Promise<string[]> {
  const keys: string[] = [];
  const input = createReadStream(file, { encoding: 'utf8' });
  try {
    const lines = createInterface({ input, crlfDelay: Infinity });
    let first = true;
    for await (const line of lines) {
      if (first) {
        first = false;
        if (line !== HEADER) return [];
        continue;
      }
      if (line) keys.push(line);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  } finally {
    input.destroy();
  }
  return keys;
}

/**
 * Orders `present` (key → weight, from a scan) by `saved`, then appends keys the saved
 * order does not know (written after the last save, so most recent) into `index`.
 */
export function rebuildIndex(index: LruIndex, present: Map<string, number>, saved: string[]): void {
  for (const key of saved) {
    const w = present.get(key);
    if (w !== undefined) index.add(key, w);
  }
  for (const [key, w] of present) if (!index.has(key)) index.add(key, w);
}

async function* lines(index: LruIndex): AsyncGenerator<string> {
  yield `${HEADER}\n`;
  // Batch keys so a million-entry index is a few hundred writes, not a million.
  let batch: string[] = [];
  for (const key of index.keys()) {
    batch.push(key);
    if (batch.length >= 4096) {
      yield `${batch.join('\n')}\n`;
      batch = [];
    }
  }
  if (batch.length) yield `${batch.join('\n')}\n`;
}

export interface RecencyJournalOptions {
  file: string;
  /** Same file system as `file`. */
  tempDir: string;
  index: LruIndex;
  clock: Clock;
  /** How long after a change the order is saved. */
  delayMs: number;
  onError?: (err: unknown) => void;
}

/** Saves the index order atomically, debounced after changes and once more on close. */
export class RecencyJournal {
  private savedVersion: number;
  private timer: { cancel(): void } | undefined;
  private saving: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly o: RecencyJournalOptions) {
    this.savedVersion = o.index.changeCount;
  }

  /** Call after touching the index; cheap, arms at most one timer. */
  changed(): void {
    if (this.closed || this.timer || this.o.index.changeCount === this.savedVersion) return;
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = undefined;
      this.flush().catch((err) => (this.o.onError ?? defaultOnError)(err));
    }, this.o.delayMs);
  }

  /** Writes the current order now if it changed since the last save. */
  async flush(): Promise<void> {
    while (this.saving) await this.saving;
    const version = this.o.index.changeCount;
    if (version === this.savedVersion) return;
    this.saving = writeFileAtomic(this.o.file, lines(this.o.index), { tempDir: this.o.tempDir });
    try {
      await this.saving;
      this.savedVersion = version;
    } finally {
      this.saving = undefined;
    }
    // Changes made while writing are picked up by the next timer.
    this.changed();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    await this.flush();
  }
}

function defaultOnError(err: unknown): void {
  console.error('kiln: could not save the cache recency index (eviction order may be lost on restart):', err);
}
