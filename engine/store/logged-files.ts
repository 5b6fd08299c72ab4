// Small files made durable through a write-ahead log (write-ahead-log.ts) rather than
// an fsync each. A put is acknowledged once its record is synced in the log (one
// fdatasync shared by every put that arrived meanwhile) and its file has been written
// to a temp name and renamed to its real one, without an fsync: until the file's own
// bytes reach the disk, the log holds them.
//
// A full log segment is checkpointed off the hot path: once its files are all in
// place they are synced in one batch (one syncfs on Linux, else an fsync each), with
// their folders, and the segment is deleted.
// At start every segment left behind is replayed: each record's file is written again
// from the log (after a power loss the renamed file may hold nothing), synced, and the
// segments deleted. A record torn by the crash was never acknowledged and is ignored.
//
// Order per path is kept: a removal logged after a put of the same path wins, both on
// disk and at replay.
import { execFile } from 'node:child_process';
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { mkdir, open, rm, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { fsyncDir, removeQuietly, uniqueTempPath } from '../util/atomic-file';
import { SyncBudget } from '../util/sync-batches';
import { WriteAheadLog, readSegments, type Segment } from './write-ahead-log';

/** Default segment size: replay at start reads at most about this much per segment. */
export const DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024;
/** Default records per segment: a replay or checkpoint fsyncs at most this many files per segment. */
export const DEFAULT_SEGMENT_RECORDS = 2048;
/**
 * fsyncs a checkpoint keeps in flight at once where it cannot flush the file system in
 * one call: libuv's pool has four threads, and the log's own writes and syncs must not
 * queue behind a checkpoint's.
 */
const CHECKPOINT_PARALLEL_SYNCS = 1;

export interface LoggedFilesOptions {
  /** Where the files live; record paths are relative to it. */
  root: string;
  /** The log's own folder. */
  walDir: string;
  /** Temp files go here before their rename; same file system as root. */
  tempDir: string;
  /** Permissions of the files written. */
  mode: number;
  segmentBytes?: number;
  segmentRecords?: number;
  /** Checkpoints with one syncfs of the whole file system where it can (Linux). Default true; false: an fsync per file. */
  syncFileSystem?: boolean;
}

export class LoggedFiles {
  private readonly madeDirs = new Set<string>();
  /** Per-path chains, so two writes of one path are applied in the order they were logged. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly checkpoints = new Set<Promise<void>>();
  /** Files materialized between two turns of the event loop. */
  private readonly budget = new SyncBudget(16);
  private log!: WriteAheadLog;
  private closed = false;

  private constructor(private readonly o: LoggedFilesOptions) {}

  /** Replays what an earlier process left in the log, then starts a fresh one. */
  static async open(o: LoggedFilesOptions): Promise<LoggedFiles> {
    const files = new LoggedFiles(o);
    await mkdir(o.walDir, { recursive: true });
    await mkdir(o.tempDir, { recursive: true });
    const lastSeq = await files.replay();
    files.log = await WriteAheadLog.create(
      {
        dir: o.walDir,
        segmentBytes: o.segmentBytes ?? DEFAULT_SEGMENT_BYTES,
        segmentRecords: o.segmentRecords ?? DEFAULT_SEGMENT_RECORDS,
        onFull: (s) => files.checkpointLater(s),
      },
      lastSeq,
    );
    return files;
  }

  /** Resolves once `data` is durable and readable at `path` (relative to the root). */
  async put(path: string, data: Uint8Array): Promise<void> {
    // (Appended before the first await, so records keep the order of the calls.)
    const target = this.resolve(path);
    return this.inOrder(path, this.log.append({ path, data }), () => this.materialize(target, data));
  }

  /** Removes the file at `path`; the removal is logged first, so a replay does not bring it back. */
  async remove(path: string): Promise<void> {
    const target = this.resolve(path);
    return this.inOrder(path, this.log.append({ path, data: undefined }), () => removeQuietly(target));
  }

  /** Checkpoints everything written: on a clean close, no log is left to replay. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.chains.values()]);
    await this.log.close();
    while (this.checkpoints.size > 0) await Promise.allSettled([...this.checkpoints]);
    const last = this.log.current;
    await this.checkpoint(last);
  }

  /** Ends the current segment and checkpoints every full one now. */
  async checkpointNow(): Promise<void> {
    await this.log.rotate();
    while (this.checkpoints.size > 0) await Promise.allSettled([...this.checkpoints]);
  }

  /**
   * Runs `apply` once `logged` (the record's sync) resolves and every earlier operation on
   * the same path is done; the segment waits for it before it may be checkpointed.
   */
  private inOrder(path: string, logged: Promise<Segment>, apply: () => Promise<void>): Promise<void> {
    const before = this.chains.get(path);
    const done = logged.then(async (segment) => {
      const work = (async () => {
        if (before) await before.catch(() => {});
        await apply();
      })();
      segment.pending.add(work);
      try {
        await work;
      } finally {
        segment.pending.delete(work);
      }
    });
    const tail = done.catch(() => {});
    this.chains.set(path, tail);
    void tail.then(() => {
      if (this.chains.get(path) === tail) this.chains.delete(path);
    });
    return done;
  }

  /**
   * Temp file + rename, no fsync: the log already holds the bytes. Made with synchronous
   * calls (a small file's four system calls cost less than four trips through libuv's
   * pool, see util/sync-batches.ts), and the event loop gets a turn every few files.
   * A rename, never a write into the named file: workers hard-link store files into
   * actions' inputs, and an existing file must never change under them.
   */
  private async materialize(target: string, data: Uint8Array): Promise<void> {
    const parent = dirname(target);
    const temp = uniqueTempPath(this.o.tempDir, 'logged');
    try {
      if (!this.madeDirs.has(parent)) {
        mkdirSync(parent, { recursive: true });
        this.madeDirs.add(parent);
      }
      const fd = openSync(temp, 'wx', this.o.mode);
      try {
        for (let done = 0; done < data.byteLength; ) done += writeSync(fd, data, done);
      } finally {
        closeSync(fd);
      }
      try {
        renameSync(temp, target);
      } catch (err) {
        // The folder was removed behind our back: make it again.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        mkdirSync(parent, { recursive: true });
        renameSync(temp, target);
      }
    } catch (err) {
      rmSync(temp, { force: true });
      throw err;
    }
    await this.budget.spent();
  }

  private checkpointLater(segment: Segment): void {
    const run = (async () => {
      // Let the writers of the segment's last batch register their work first.
      await new Promise((r) => setImmediate(r));
      await this.checkpoint(segment);
    })()
      .catch((err) => console.error(`kiln: checkpointing ${segment.path} failed; it is replayed at the next start:`, err))
      .finally(() => this.checkpoints.delete(run));
    this.checkpoints.add(run);
  }

  /** Syncs the files of `segment`'s records and their folders, then deletes the segment. */
  private async checkpoint(segment: Segment): Promise<void> {
    await segment.settled();
    await this.syncAll([...segment.paths].map((p) => this.resolve(p)));
    await segment.fh.close();
    await rm(segment.path, { force: true });
    await fsyncDir(this.o.walDir);
  }

  /** Applies every record left in the log by an earlier process, syncs the result, drops the log. Returns the last segment number. */
  private async replay(): Promise<number> {
    const { records, segments, lastSeq } = await readSegments(this.o.walDir);
    if (segments.length === 0) return 0;
    const touched = new Set<string>();
    for (const r of records) {
      let target: string;
      try {
        target = this.resolve(r.path);
      } catch {
        continue; // Checksummed, so never expected; but no path may lead outside the root.
      }
      touched.add(target);
      if (r.data) await this.materialize(target, r.data);
      else await removeQuietly(target);
    }
    await this.syncAll([...touched]);
    for (const s of segments) await unlink(s);
    await fsyncDir(this.o.walDir);
    return lastSeq;
  }

  /**
   * Makes `paths` (files just renamed into place under the root) and their folders durable.
   * On Linux one syncfs(2) of the file system, through coreutils' `/bin/sync --file-system`
   * (Node has no syncfs), does it for all of them: a process start (a few ms, off the
   * request path) instead of an fsync per file, each of which forces a journal commit
   * that the log's own syncs then queue behind. Elsewhere, or if that fails, each file
   * and folder is fsynced.
   */
  private async syncAll(paths: string[]): Promise<void> {
    if (paths.length === 0) return;
    if (this.o.syncFileSystem !== false && process.platform === 'linux' && (await syncFileSystem(this.o.root))) return;
    await syncFiles(paths);
  }

  private resolve(path: string): string {
    const clean = normalize(path);
    if (isAbsolute(clean) || clean === '..' || clean.startsWith(`..${sep}`) || clean === '.') {
      throw new Error(`log record path escapes the store: ${path}`);
    }
    return join(this.o.root, clean);
  }
}

function syncFileSystem(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('/bin/sync', ['--file-system', path], { timeout: 10 * 60_000 }, (err) => resolve(!err));
  });
}

/** fsyncs each file (a missing one, since removed, is skipped), a few at a time, then each of their folders once. */
async function syncFiles(paths: string[]): Promise<void> {
  const folders = new Set<string>();
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const path = paths[next++]!;
      folders.add(dirname(path));
      let fh;
      try {
        fh = await open(path, 'r');
        await fh.sync();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      } finally {
        await fh?.close().catch(() => {});
      }
    }
  };
  await Promise.all(Array.from({ length: CHECKPOINT_PARALLEL_SYNCS }, worker));
  for (const folder of folders) await fsyncDir(folder);
}
