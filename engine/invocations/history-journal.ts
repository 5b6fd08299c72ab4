// Keeps the action history and the invocations across restarts: one JSON
// object per line in {dataDir}/history/journal.jsonl, appended as actions finish
// and invocations change. Appends are batched (one write a second); a crash
// loses at most that second, and a torn last line is skipped when read back.
// At start, and whenever the file holds much more than the history does, it
// is rewritten from what is kept (atomically: temp file, fsync, rename), so
// its size follows the history's own count and age bounds.
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ActionDetail, InvocationSummary } from '../common/api-types';
import type { ActionHistory } from '../history/action-history';
import { writeFileAtomicSync } from '../util/atomic-file';
import type { InvocationIndex } from './invocation-index';

export const JOURNAL_FILE = join('history', 'journal.jsonl');

type SavedAction = Omit<ActionDetail, 'logs'>;
type Line = { action: SavedAction } | { invocation: InvocationSummary };

export interface JournalOptions {
  dataDir: string;
  /** How often pending lines are written; default 1 s. */
  flushMs?: number;
  /** Bytes appended since the last rewrite that always trigger one; default 64 MiB (see flush). */
  rewriteAfterBytes?: number;
  log?: (line: string) => void;
}

export interface Saved {
  actions: SavedAction[];
  invocations: InvocationSummary[];
}

export class HistoryJournal {
  readonly path: string;
  private pending: string[] = [];
  private dirtyInvocations = new Set<string>();
  private lines = 0;
  /** File size after the last rewrite, and bytes appended since. */
  private compactedBytes = 0;
  private appendedBytes = 0;
  private timer?: NodeJS.Timeout;
  private offs: (() => void)[] = [];
  private history?: ActionHistory;
  private index?: InvocationIndex;
  private failed = false;

  constructor(private readonly opts: JournalOptions) {
    this.path = join(opts.dataDir, JOURNAL_FILE);
  }

  /** What an earlier run saved, latest line per action and invocation winning; unreadable lines skipped. */
  read(): Saved {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.log?.(`kiln: history not restored: cannot read ${this.path}: ${(err as Error).message}`);
      return { actions: [], invocations: [] };
    }
    const actions = new Map<string, SavedAction>();
    const invocations = new Map<string, InvocationSummary>();
    let skipped = 0;
    for (const raw of text.split('\n')) {
      if (!raw.trim()) continue;
      let line: Partial<Record<'action' | 'invocation', { id?: unknown }>>;
      try {
        line = JSON.parse(raw);
      } catch {
        skipped++; // A torn write at a crash, or a damaged line: the rest still counts.
        continue;
      }
      if (line.action && typeof line.action.id === 'string') {
        actions.delete(line.action.id);
        actions.set(line.action.id, line.action as SavedAction);
      } else if (line.invocation && typeof line.invocation.id === 'string') {
        invocations.delete(line.invocation.id);
        invocations.set(line.invocation.id, line.invocation as InvocationSummary);
      } else {
        skipped++;
      }
    }
    if (skipped) this.opts.log?.(`kiln: skipped ${skipped} unreadable line(s) of ${this.path}`);
    const byStart = (a: { startedAt: number }, b: { startedAt: number }) => a.startedAt - b.startedAt;
    return {
      actions: [...actions.values()].sort((a, b) => a.queuedAt - b.queuedAt),
      invocations: [...invocations.values()].sort(byStart),
    };
  }

  /**
   * Restores what was saved into `history` and `index` (before they see live
   * events), rewrites the file to what they kept, then saves changes as they come.
   */
  start(history: ActionHistory, index: InvocationIndex): void {
    this.history = history;
    this.index = index;
    const saved = this.read();
    history.restore(saved.actions);
    index.restore(saved.invocations);
    this.compact();
    this.offs.push(
      history.onChange((c) => {
        if (c.kind !== 'finished') return;
        const detail = history.get(c.action.id);
        if (detail) this.queue({ action: detail });
      }),
      index.onChange((id) => this.dirtyInvocations.add(id)),
    );
    this.timer = setInterval(() => this.flush(), this.opts.flushMs ?? 1_000);
    this.timer.unref();
  }

  /** Writes what is pending now (also called on stop). */
  flush(): void {
    for (const id of this.dirtyInvocations) {
      const inv = this.index?.get(id);
      if (inv) this.pending.push(JSON.stringify({ invocation: inv } satisfies Line));
    }
    this.dirtyInvocations.clear();
    if (this.pending.length === 0 || this.failed) return;
    const text = this.pending.join('\n') + '\n';
    const count = this.pending.length;
    this.pending = [];
    try {
      appendFileSync(this.path, text);
      this.lines += count;
      this.appendedBytes += Buffer.byteLength(text);
    } catch (err) {
      // Keep serving builds; the history just won't outlive this run.
      this.failed = true;
      this.opts.log?.(`kiln: history is no longer saved: cannot write ${this.path}: ${(err as Error).message}`);
      return;
    }
    // By lines, and by bytes: a running build's invocation (its targets and tests) is saved again each time it changes.
    const byteLimit = Math.max(this.opts.rewriteAfterBytes ?? 64 * 1024 * 1024, 2 * this.compactedBytes);
    if (this.lines > 2 * this.kept() + 1_000 || this.appendedBytes > byteLimit) this.compact();
  }

  /** Rewrites the file to what the history and invocations keep now (after their budget shrank). */
  trim(): void {
    this.flush();
    if (!this.failed) this.compact();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.flush();
    this.offs.forEach((off) => off());
    this.offs = [];
  }

  private queue(line: Line): void {
    this.pending.push(JSON.stringify(line));
  }

  private kept(): number {
    return (this.history?.stats().actions ?? 0) + (this.index?.list({ limit: 1 }).total ?? 0);
  }

  /** Replaces the file with one line per kept action and invocation. */
  private compact(): void {
    if (!this.history || !this.index) return;
    const lines = [
      ...this.history.finished().map((action) => JSON.stringify({ action } satisfies Line)),
      ...this.index.snapshot().map((invocation) => JSON.stringify({ invocation } satisfies Line)),
    ];
    try {
      mkdirSync(join(this.opts.dataDir, 'history'), { recursive: true });
      const text = lines.length ? lines.join('\n') + '\n' : '';
      writeFileAtomicSync(this.path, text);
      this.lines = lines.length;
      this.compactedBytes = Buffer.byteLength(text);
      this.appendedBytes = 0;
    } catch (err) {
      this.failed = true;
      this.opts.log?.(`kiln: history is not saved: cannot write ${this.path}: ${(err as Error).message}`);
    }
  }
}
