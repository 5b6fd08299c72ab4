// Live action logs. The action process writes stdout/stderr straight into files;
// the hub only knows where they are and whether the action has finished, and lets
// any number of readers tail them from any offset at their own pace. A reader
// holds one file handle and one chunk, so a slow reader costs no memory and
// never slows the action. Finished logs stay readable from their files until
// retention (count, bytes, age) deletes them.
import { mkdirSync } from 'node:fs';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock';
import type { LogStreamName } from '../common/action-vocabulary';
import type { EventBus } from '../events/event-bus';
import { fileChangeWaiter, type ChangeWaiter } from './file-change';

export const LOG_STREAMS: readonly LogStreamName[] = ['stdout', 'stderr'];

export interface LogPaths {
  stdout: string;
  stderr: string;
}

export interface LogRead {
  /** Byte offset of `data` in the log. */
  offset: number;
  data: Buffer;
}

export interface LogInfo {
  id: string;
  started: boolean;
  finished: boolean;
  /** Bytes in the file right now (0 when it does not exist yet). */
  size: number;
}

export interface LogRetention {
  /** Finished actions whose logs are kept. */
  maxLogs: number;
  /** Total bytes of finished logs kept. */
  maxBytes: number;
  /** Finished logs older than this are deleted. */
  maxAgeMs: number;
}

export const DEFAULT_LOG_RETENTION: LogRetention = {
  maxLogs: 2_000,
  maxBytes: 1024 ** 3,
  maxAgeMs: 24 * 60 * 60_000,
};

export interface LogHubOptions {
  /** Where `pathsFor` puts log files. Created if missing. */
  dir: string;
  retention?: Partial<LogRetention>;
  /** Fallback poll while waiting for a file to grow. */
  pollMs?: number;
  /** Largest chunk a reader gets at once. */
  chunkBytes?: number;
  clock?: Clock;
}

export interface ReadOptions {
  offset?: number;
  /** Bytes to read at most; 0 or undefined: no limit. */
  limit?: number;
  /** Keep waiting for new bytes until the action finishes (default true). */
  follow?: boolean;
  signal?: AbortSignal;
}

export class LogNotFoundError extends Error {
  constructor(readonly id: string) {
    super(`no log for action ${id} (unknown, or deleted by log retention)`);
  }
}

interface LogEntry {
  id: string;
  paths?: LogPaths;
  started: boolean;
  finished: boolean;
  finishedAt?: number;
  /** Size of both files at finish, for the retention byte budget. */
  bytes: number;
  waiters: Record<LogStreamName, ChangeWaiter>;
}

export class LogHub {
  private readonly entries = new Map<string, LogEntry>();
  /** Finished entries that ran (have files), oldest first: the retention queue. */
  private readonly finishedOrder = new Set<string>();
  /**
   * Finished entries that never ran (cache hits, actions cancelled in the queue): no
   * files, but still answered (an empty log, not "not found"). A queue of their own,
   * under the same count and age limits, so a build of cache hits does not push the
   * logs of actions that really ran out of retention.
   */
  private readonly neverRanOrder = new Set<string>();
  private finishedBytes = 0;
  private readonly retention: LogRetention;
  private readonly pollMs: number;
  private readonly chunkBytes: number;
  private readonly clock: Clock;
  private ageTimer?: { cancel(): void };
  private closed = false;

  constructor(private readonly opts: LogHubOptions) {
    this.retention = { ...DEFAULT_LOG_RETENTION, ...opts.retention };
    this.pollMs = opts.pollMs ?? 250;
    this.chunkBytes = opts.chunkBytes ?? 64 * 1024;
    this.clock = opts.clock ?? systemClock;
    mkdirSync(opts.dir, { recursive: true });
    this.scheduleAgePrune();
  }

  /** Follows action.queued/started/finished. Returns an unsubscribe function. */
  attach(bus: EventBus): () => void {
    const offs = [
      bus.on('action.queued', (e) => this.expect(e.id)),
      bus.on('action.started', (e) => this.start(e.id, { stdout: e.stdoutPath, stderr: e.stderrPath })),
      bus.on('action.finished', (e) => void this.finish(e.id, logBytes(e.stdoutDigest, e.stderrDigest))),
    ];
    return () => offs.forEach((off) => off());
  }

  /** Where an action's logs should be written so retention can manage them. */
  pathsFor(id: string): LogPaths {
    const safe = encodeURIComponent(id);
    return { stdout: join(this.opts.dir, `${safe}.stdout`), stderr: join(this.opts.dir, `${safe}.stderr`) };
  }

  /** Registers an action before it runs, so readers can wait for it. */
  expect(id: string): void {
    if (this.closed || this.entries.has(id)) return;
    let entry: LogEntry | undefined;
    const pathOf = (s: LogStreamName) => () => entry?.paths?.[s];
    entry = {
      id,
      started: false,
      finished: false,
      bytes: 0,
      waiters: { stdout: fileChangeWaiter(pathOf('stdout'), this.pollMs), stderr: fileChangeWaiter(pathOf('stderr'), this.pollMs) },
    };
    this.entries.set(id, entry);
  }

  start(id: string, paths: LogPaths): void {
    this.expect(id);
    const entry = this.entries.get(id);
    if (!entry || entry.finished) return;
    entry.paths = paths;
    entry.started = true;
    this.wake(entry);
  }

  /**
   * The action is over: readers drain what is in the files, then end. The
   * promise settles once the log is counted against retention (callers may ignore it).
   */
  /** The action is done; `knownBytes`, when given, is both logs' size, so the files need no stat. */
  finish(id: string, knownBytes?: number): Promise<void> {
    const entry = this.entries.get(id);
    if (!entry || entry.finished) return Promise.resolve();
    entry.finished = true;
    entry.finishedAt = this.clock.now();
    this.wake(entry);
    return this.account(entry, knownBytes).catch((err) => console.error(`kiln: log retention failed for ${id}:`, err));
  }

  /**
   * Bytes were just appended by a writer in this process (a LogStream's external
   * writer): wake the log's readers now rather than at the next watch event or poll.
   */
  notify(id: string): void {
    const entry = this.entries.get(id);
    if (entry) this.wake(entry);
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  async info(id: string, stream: LogStreamName): Promise<LogInfo | undefined> {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    return { id, started: entry.started, finished: entry.finished, size: await sizeOf(entry.paths?.[stream]) };
  }

  /**
   * Reads a log from `offset`: what is in the file, then (when following) new
   * bytes as they are written, ending once the action has finished and the file
   * is drained. Throws LogNotFoundError for an unknown action.
   */
  async *read(id: string, stream: LogStreamName, options: ReadOptions = {}): AsyncGenerator<LogRead> {
    const entry = this.entries.get(id);
    if (!entry) throw new LogNotFoundError(id);
    const { signal, follow = true } = options;
    let pos = Math.max(0, options.offset ?? 0);
    let remaining = options.limit && options.limit > 0 ? options.limit : Infinity;
    let fh: FileHandle | undefined;
    try {
      while (remaining > 0 && !signal?.aborted) {
        // Read `finished` before reading the file: the process exits before the
        // finish event, so an empty read after a finished flag really is the end.
        const wasFinished = entry.finished;
        const path = entry.paths?.[stream];
        if (!fh && path) fh = await openIfExists(path);
        if (fh) {
          const buf = Buffer.allocUnsafe(Math.min(this.chunkBytes, remaining));
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          if (bytesRead > 0) {
            const data = bytesRead === buf.length ? buf : Buffer.from(buf.subarray(0, bytesRead));
            yield { offset: pos, data };
            pos += bytesRead;
            remaining -= bytesRead;
            continue;
          }
        }
        if (wasFinished || !follow || this.closed) return;
        await entry.waiters[stream].wait(signal);
      }
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  /** Applies the retention limits now (also runs on every finish and periodically). */
  async prune(): Promise<void> {
    const { maxLogs, maxBytes, maxAgeMs } = this.retention;
    const now = this.clock.now();
    for (const id of this.finishedOrder) {
      const entry = this.entries.get(id)!;
      const over =
        this.finishedOrder.size > maxLogs || this.finishedBytes > maxBytes || now - (entry.finishedAt ?? now) > maxAgeMs;
      if (!over) break;
      await this.remove(entry);
    }
    for (const id of this.neverRanOrder) {
      const entry = this.entries.get(id)!;
      if (this.neverRanOrder.size <= maxLogs && now - (entry.finishedAt ?? now) <= maxAgeMs) break;
      await this.remove(entry);
    }
  }

  /** Counts for tests and the status page. */
  stats(): { logs: number; finished: number; finishedBytes: number } {
    return { logs: this.entries.size, finished: this.finishedOrder.size + this.neverRanOrder.size, finishedBytes: this.finishedBytes };
  }

  close(): void {
    this.closed = true;
    this.ageTimer?.cancel();
    for (const entry of this.entries.values()) for (const s of LOG_STREAMS) entry.waiters[s].close();
  }

  private wake(entry: LogEntry): void {
    for (const s of LOG_STREAMS) entry.waiters[s].wakeAll();
  }

  private async account(entry: LogEntry, knownBytes?: number): Promise<void> {
    const bytes = knownBytes ?? (await Promise.all(LOG_STREAMS.map((s) => sizeOf(entry.paths?.[s])))).reduce((a, b) => a + b, 0);
    if (!this.entries.has(entry.id)) return;
    if (!entry.started) this.neverRanOrder.add(entry.id);
    else {
      entry.bytes = bytes;
      this.finishedBytes += entry.bytes;
      this.finishedOrder.add(entry.id);
    }
    await this.prune();
  }

  private async remove(entry: LogEntry): Promise<void> {
    if (!this.finishedOrder.delete(entry.id) && !this.neverRanOrder.delete(entry.id)) return;
    this.entries.delete(entry.id);
    this.finishedBytes -= entry.bytes;
    for (const s of LOG_STREAMS) entry.waiters[s].close();
    // Readers that already opened a file keep their handle (POSIX), so deleting is safe.
    await Promise.all(LOG_STREAMS.map((s) => (entry.paths ? rm(entry.paths[s], { force: true }) : undefined))).catch((err) =>
      console.error(`kiln: could not delete logs of ${entry.id}:`, err),
    );
  }

  private scheduleAgePrune(): void {
    if (this.closed) return;
    const every = Math.min(10 * 60_000, Math.max(1_000, this.retention.maxAgeMs / 10));
    this.ageTimer = this.clock.setTimeout(() => {
      void this.prune().finally(() => this.scheduleAgePrune());
    }, every);
  }
}

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function sizeOf(path: string | undefined): Promise<number> {
  if (!path) return 0;
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/**
 * Both logs' size from a finished action's digests ("hash/size"): the logs were
 * uploaded from these files once the process had exited, so nothing grows them
 * after. Undefined unless both are there (then the files are measured).
 */
function logBytes(stdoutDigest: string | undefined, stderrDigest: string | undefined): number | undefined {
  if (stdoutDigest === undefined || stderrDigest === undefined) return undefined;
  const size = (d: string) => Number(d.slice(d.lastIndexOf('/') + 1));
  const bytes = size(stdoutDigest) + size(stderrDigest);
  return Number.isSafeInteger(bytes) && bytes >= 0 ? bytes : undefined;
}
