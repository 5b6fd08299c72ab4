// Small files made durable through a write-ahead log (write-ahead-log.ts) rather than
// an fsync each. A put is acknowledged once its record is synced in the log (one
// fdatasync shared by every put that arrived meanwhile). Its file is written later, off
// the request path, once the puts pause (between builds) or too many bytes wait: until
// then the bytes are held in memory (`unwritten`), and a caller that needs the file
// itself (to hard-link it) asks for it with `writeOut`. The file is
// written to a temp name and renamed to its real one, without an fsync: until the file's
// own bytes reach the disk, the log holds them.
//
// A full log segment is checkpointed off the hot path: every file still unwritten is put
// in place, they are synced in one batch (one syncfs on Linux, else an fsync each), with
// their folders, and the segment is deleted.
// At start every segment left behind is replayed: each record's file is written again
// from the log (after a power loss the renamed file may hold nothing, after a kill it may
// never have been written), synced, and the segments deleted. A record torn by the crash
// was never acknowledged and is ignored.
//
// Order per path is kept: records are applied in the order they were logged (a batch's
// acknowledgements run in log order), so a removal logged after a put of the same path
// wins, both on disk and at replay.
import { execFile } from 'node:child_process';
import { closeSync, mkdirSync, openSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, open, rm, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { fsyncDir, uniqueTempPath } from '../util/atomic-file';
import { SyncBudget } from '../util/sync-batches';
import { WriteAheadLog, readSegments, type Segment } from './write-ahead-log';

/** Default segment size: replay at start reads at most about this much per segment. */
export const DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024;
/** Default records per segment: a replay or checkpoint fsyncs at most this many files per segment. */
export const DEFAULT_SEGMENT_RECORDS = 2048;
/**
 * Files are written once no put has come for this long: between builds, not during one.
 * During a build the temp-file renames contend in ext4's journal with the actions' own
 * folders (rename p50 ~150 µs in serve during a Bazel build, against 19 µs in a plain
 * Node loop on an idle disk), and the log already holds the bytes.
 */
export const DEFAULT_WRITE_OUT_QUIET_MS = 1_000;
/** A steady trickle of puts never keeps a file in memory for longer than this. */
export const DEFAULT_WRITE_OUT_MAX_DELAY_MS = 10_000;
/** Unwritten bytes that start a write-out at once, whatever the delay: memory stays bounded. */
export const DEFAULT_WRITE_OUT_BYTES = 4 * 1024 * 1024;
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
  /** See DEFAULT_WRITE_OUT_QUIET_MS. */
  writeOutQuietMs?: number;
  /** See DEFAULT_WRITE_OUT_MAX_DELAY_MS. */
  writeOutMaxDelayMs?: number;
  /** See DEFAULT_WRITE_OUT_BYTES. */
  writeOutBytes?: number;
}

/** An acknowledged put whose file is not in place yet. */
interface Unwritten {
  data: Uint8Array;
  /** Where it goes (absolute). */
  target: string;
  /** The segment holding its record: that segment's checkpoint must see the file first. */
  seq: number;
}

export class LoggedFiles {
  private readonly madeDirs = new Set<string>();
  /** Acknowledged puts not yet written, by path; Map order is the order they were acknowledged. */
  private readonly unwrittenFiles = new Map<string, Unwritten>();
  private unwrittenBytes = 0;
  private writeOutTimer: NodeJS.Timeout | undefined;
  /** When the last put came, and when the write-out timer was first armed (performance.now()). */
  private lastPutAt = 0;
  private waitingSince = 0;
  private writingOut: Promise<void> | undefined;
  private readonly checkpoints = new Set<Promise<void>>();
  /** Files written between two turns of the event loop. */
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

  /**
   * Resolves once `data` is durable. From then on `unwritten(path)` returns it until its
   * file is in place (written soon after, or at once by `writeOut`). The caller must not
   * change `data` afterwards.
   */
  async put(path: string, data: Uint8Array): Promise<void> {
    // (Appended before the first await, so records keep the order of the calls.)
    const target = this.resolve(path);
    const segment = await this.log.append({ path, data });
    this.forget(path);
    this.unwrittenFiles.set(path, { data, target, seq: segment.seq });
    this.unwrittenBytes += data.byteLength;
    this.scheduleWriteOut();
  }

  /** Removes the file at `path`; the removal is logged first, so a replay does not bring it back. */
  async remove(path: string): Promise<void> {
    const target = this.resolve(path);
    await this.log.append({ path, data: undefined });
    // Synchronous, in the same turn as the acknowledgement: no write-out of an earlier put can come after it.
    this.forget(path);
    try {
      unlinkSync(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** The bytes of an acknowledged put of `path` whose file is not written yet, else undefined. Not to be changed. */
  unwritten(path: string): Uint8Array | undefined {
    return this.unwrittenFiles.size === 0 ? undefined : this.unwrittenFiles.get(path)?.data;
  }

  /** Acknowledged puts whose files are not written yet. */
  get unwrittenCount(): number {
    return this.unwrittenFiles.size;
  }

  /** Puts the file of an acknowledged put of `path` in place now, if it is not yet: for a caller that needs the file itself. */
  writeOut(path: string): void {
    const u = this.unwrittenFiles.get(path);
    if (u) this.writeOne(path, u);
  }

  /**
   * Drops the unwritten bytes of `path` without writing its file: for a caller about to
   * delete the file anyway (an eviction, which is not logged). Its record stays in the log
   * until its segment's checkpoint, as a file written and then deleted stays there.
   */
  discard(path: string): void {
    this.forget(path);
  }

  /** Writes every unwritten file now. */
  async writeOutAll(): Promise<void> {
    await this.writeOutUpTo(Infinity);
  }

  /** Checkpoints everything written: on a clean close, no log is left to replay. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.log.close();
    clearTimeout(this.writeOutTimer);
    while (this.checkpoints.size > 0) await Promise.allSettled([...this.checkpoints]);
    const last = this.log.current;
    await this.checkpoint(last);
  }

  /** Ends the current segment and checkpoints every full one now. */
  async checkpointNow(): Promise<void> {
    await this.log.rotate();
    while (this.checkpoints.size > 0) await Promise.allSettled([...this.checkpoints]);
  }

  private forget(path: string): void {
    const old = this.unwrittenFiles.get(path);
    if (!old) return;
    this.unwrittenFiles.delete(path);
    this.unwrittenBytes -= old.data.byteLength;
  }

  private scheduleWriteOut(): void {
    if (this.closed) return;
    if (this.unwrittenBytes >= (this.o.writeOutBytes ?? DEFAULT_WRITE_OUT_BYTES)) {
      clearTimeout(this.writeOutTimer);
      this.writeOutTimer = undefined;
      void this.writeOutSoon();
      return;
    }
    this.lastPutAt = performance.now();
    if (this.writeOutTimer || this.writingOut) return;
    this.waitingSince = this.lastPutAt;
    this.armWriteOut(this.o.writeOutQuietMs ?? DEFAULT_WRITE_OUT_QUIET_MS);
  }

  /** Waits `ms`, then writes out if the puts have paused (or waited too long), else waits out the rest of the quiet. */
  private armWriteOut(ms: number): void {
    // One timer re-armed when it fires, rather than one reset per put.
    this.writeOutTimer = setTimeout(() => {
      const now = performance.now();
      const quietFor = now - this.lastPutAt;
      const quietMs = this.o.writeOutQuietMs ?? DEFAULT_WRITE_OUT_QUIET_MS;
      const maxDelayMs = this.o.writeOutMaxDelayMs ?? DEFAULT_WRITE_OUT_MAX_DELAY_MS;
      if (quietFor < quietMs && now - this.waitingSince < maxDelayMs) {
        this.armWriteOut(Math.min(quietMs - quietFor, maxDelayMs - (now - this.waitingSince)));
        return;
      }
      this.writeOutTimer = undefined;
      void this.writeOutSoon();
    }, ms);
    this.writeOutTimer.unref();
  }

  /** The background write-out: errors are reported, and the files stay unwritten (served from memory, replayed at the next start). */
  private writeOutSoon(): Promise<void> {
    return this.writeOutUpTo(Infinity).catch((err) => console.error('kiln: writing logged files out failed; they are kept in memory and in the log:', err));
  }

  /**
   * Writes the unwritten files of segments up to `seq`, a few per turn of the event loop.
   * One pass at a time; puts acknowledged meanwhile are taken in the same pass.
   */
  private async writeOutUpTo(seq: number): Promise<void> {
    while (this.writingOut) await this.writingOut.catch(() => {});
    const pass = (async () => {
      for (let more = true; more; ) {
        more = false;
        // Deleting the entry just visited is safe while iterating a Map; entries added meanwhile are visited too.
        for (const [path, u] of this.unwrittenFiles) {
          if (u.seq > seq) continue;
          this.writeOne(path, u);
          const turn = this.budget.spent();
          if (turn) {
            await turn;
            more = true; // The map may have changed during the turn: walk it again.
            break;
          }
        }
      }
    })();
    this.writingOut = pass;
    try {
      await pass;
    } finally {
      this.writingOut = undefined;
    }
    // Puts that came while the pass ran past them (seq beyond this one) get their own.
    if (this.unwrittenFiles.size > 0) this.scheduleWriteOut();
  }

  private writeOne(path: string, u: Unwritten): void {
    this.materialize(u.target, u.data);
    // Only now, after the rename: a reader never finds neither the bytes nor the file.
    this.forget(path);
  }

  /**
   * Temp file + rename, no fsync: the log already holds the bytes. Made with synchronous
   * calls (a small file's four system calls cost less than four trips through libuv's
   * pool, see util/sync-batches.ts).
   * A rename, never a write into the named file: workers hard-link store files into
   * actions' inputs, and an existing file must never change under them.
   */
  private materialize(target: string, data: Uint8Array): void {
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
  }

  private checkpointLater(segment: Segment): void {
    const run = (async () => {
      // Let the puts of the segment's last batch record their unwritten files first.
      await new Promise((r) => setImmediate(r));
      await this.checkpoint(segment);
    })()
      .catch((err) => console.error(`kiln: checkpointing ${segment.path} failed; it is replayed at the next start:`, err))
      .finally(() => this.checkpoints.delete(run));
    this.checkpoints.add(run);
  }

  /** Writes out the files of `segment`'s records, syncs them and their folders, then deletes the segment. */
  private async checkpoint(segment: Segment): Promise<void> {
    await this.writeOutUpTo(segment.seq);
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
      if (r.data) this.materialize(target, r.data);
      else rmSync(target, { force: true });
      await this.budget.spent();
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
