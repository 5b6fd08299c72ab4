// A write-ahead log with group commit: small writes are appended to a segment file
// and made durable together by one fdatasync, instead of one fsync (and a folder
// fsync) each. Appends that arrive while a sync runs wait for the next one, so the
// cost of durability is paid once per batch however many writers there are.
//
// A segment is a sequence of records, each carrying a CRC-32 of its contents. A crash
// can leave a torn record at the end of the last segment; reading stops at the first
// record that is short or fails its checksum, and nothing after it is trusted.
import { crc32 } from 'node:zlib';
import { constants } from 'node:fs';
import { open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writevFully } from '../util/atomic-file';

/** A file's new content (`data`), or its removal (`data` undefined), by path relative to the store's root. */
export interface WalRecord {
  path: string;
  data: Uint8Array | undefined;
}

const MAGIC = 0x4b574c31; // "KWL1"
/** magic u32, kind u8, reserved u8, path length u16, data length u32, crc32 u32 (all little-endian). */
const HEADER_BYTES = 16;
const KIND_PUT = 1;
const KIND_REMOVE = 2;
const SEGMENT_SUFFIX = '.wal';
const MAX_PATH_BYTES = 0xffff;

export function encodeRecord(record: WalRecord): Buffer {
  const path = Buffer.from(record.path, 'utf8');
  if (path.byteLength > MAX_PATH_BYTES) throw new RangeError(`log record path too long: ${record.path}`);
  const data = record.data ?? new Uint8Array(0);
  const out = Buffer.allocUnsafe(HEADER_BYTES + path.byteLength + data.byteLength);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt8(record.data ? KIND_PUT : KIND_REMOVE, 4);
  out.writeUInt8(0, 5);
  out.writeUInt16LE(path.byteLength, 6);
  out.writeUInt32LE(data.byteLength, 8);
  path.copy(out, HEADER_BYTES);
  out.set(data, HEADER_BYTES + path.byteLength);
  out.writeUInt32LE(checksum(out), 12);
  return out;
}

/** CRC-32 of the kind, lengths, path and data: everything but the magic and the checksum itself. */
function checksum(record: Buffer): number {
  return crc32(record.subarray(HEADER_BYTES), crc32(record.subarray(4, 12)));
}

/**
 * The records of one segment, in order, up to the first one that is torn or damaged.
 * `validBytes` is where the intact prefix ends.
 */
export function decodeSegment(bytes: Buffer): { records: WalRecord[]; validBytes: number } {
  const records: WalRecord[] = [];
  let at = 0;
  while (at + HEADER_BYTES <= bytes.byteLength) {
    if (bytes.readUInt32LE(at) !== MAGIC) break;
    const kind = bytes.readUInt8(at + 4);
    const pathBytes = bytes.readUInt16LE(at + 6);
    const dataBytes = bytes.readUInt32LE(at + 8);
    const end = at + HEADER_BYTES + pathBytes + dataBytes;
    if ((kind !== KIND_PUT && kind !== KIND_REMOVE) || end > bytes.byteLength) break;
    const record = bytes.subarray(at, end);
    if (record.readUInt32LE(12) !== checksum(record)) break;
    const path = record.toString('utf8', HEADER_BYTES, HEADER_BYTES + pathBytes);
    const data = kind === KIND_PUT ? record.subarray(HEADER_BYTES + pathBytes) : undefined;
    records.push({ path, data });
    at = end;
  }
  return { records, validBytes: at };
}

/** Segment files in `dir`, oldest first (names are zero-padded sequence numbers). */
export async function listSegments(dir: string): Promise<{ seq: number; path: string }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => /^\d{12}\.wal$/.test(n))
    .sort()
    .map((n) => ({ seq: Number(n.slice(0, 12)), path: join(dir, n) }));
}

/** Every intact record of every segment in `dir`, oldest first. */
export async function readSegments(dir: string): Promise<{ records: WalRecord[]; segments: string[]; lastSeq: number }> {
  const records: WalRecord[] = [];
  const segments = await listSegments(dir);
  for (const s of segments) records.push(...decodeSegment(await readFile(s.path)).records);
  return { records, segments: segments.map((s) => s.path), lastSeq: segments.at(-1)?.seq ?? 0 };
}

/** One segment file being appended to, and the paths written through it (for the checkpoint). */
export class Segment {
  size = 0;
  records = 0;
  /** Paths of the records appended here, for the checkpoint that syncs them and drops the segment. */
  readonly paths = new Set<string>();

  constructor(
    readonly seq: number,
    readonly path: string,
    readonly fh: FileHandle,
    /** Opened with O_DSYNC: a write returns once its bytes are on stable storage, as a write and an fdatasync would. */
    readonly syncedWrites = false,
  ) {}
}

interface Waiting {
  bytes: Buffer;
  path: string;
  resolve(segment: Segment): void;
  reject(err: unknown): void;
}

export interface WriteAheadLogOptions {
  dir: string;
  /** A segment at least this large is handed to `onFull` and a new one started. */
  segmentBytes: number;
  /**
   * Or one holding this many records: its checkpoint (and a replay after a crash) costs an
   * fsync per file, so tiny records must not pile up by the ten thousand.
   */
  segmentRecords: number;
  /** Receives each full segment, no longer appended to, for the owner to checkpoint and drop. */
  onFull(segment: Segment): void;
}

export class WriteAheadLog {
  private queue: Waiting[] = [];
  /** True from the first waiting append until the flush loop finds nothing left (set and cleared synchronously). */
  private flushActive = false;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly o: WriteAheadLogOptions,
    private active: Segment,
  ) {}

  /** Starts a fresh segment numbered after `lastSeq` (segments up to it must already be dealt with). */
  static async create(o: WriteAheadLogOptions, lastSeq: number): Promise<WriteAheadLog> {
    return new WriteAheadLog(o, await newSegment(o.dir, lastSeq + 1));
  }

  /** The segment currently appended to. */
  get current(): Segment {
    return this.active;
  }

  /**
   * Appends `record`; resolves with the segment it went to once it is on stable storage.
   * Records are written in the order appended.
   */
  append(record: WalRecord): Promise<Segment> {
    if (this.closed) return Promise.reject(new Error('the write-ahead log is closed'));
    const bytes = encodeRecord(record);
    return new Promise((resolve, reject) => {
      this.queue.push({ bytes, path: record.path, resolve, reject });
      // The first write starts a flush only after this turn of the event loop, so the writes
      // the same request makes (a BatchUpdateBlobs' blobs reach here a few promise steps
      // apart) share its sync instead of waiting for a second one.
      if (!this.flushActive) {
        this.flushActive = true;
        this.flushing = new Promise<void>((r) => setImmediate(r)).then(() => this.flush());
      }
    });
  }

  /** Ends the segment under way now (if it holds anything) and hands it to `onFull`. */
  async rotate(): Promise<void> {
    while (this.flushActive) await this.flushing;
    if (this.active.size > 0) await this.startNext();
  }

  /** Waits for appends under way; the current segment is left for the owner to drop. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushActive) await this.flushing;
  }

  /** Writes and syncs batches until nothing waits: whatever arrives during one sync forms the next batch. */
  private async flush(): Promise<void> {
    for (;;) {
      if (this.queue.length === 0) {
        // Cleared in the same turn that finds the queue empty: any later append starts a new flush.
        this.flushActive = false;
        return;
      }
      const batch = this.queue;
      this.queue = [];
      const segment = this.active;
      const start = segment.size;
      try {
        await writevFully(
          segment.fh,
          batch.map((w) => w.bytes),
          start,
        );
        segment.size += batch.reduce((n, w) => n + w.bytes.byteLength, 0);
        segment.records += batch.length;
        if (!segment.syncedWrites) await segment.fh.datasync();
      } catch (err) {
        // Nothing of this batch counts; cut it off so a later, shorter batch leaves no stale records behind it.
        segment.size = start;
        await segment.fh.truncate(start).catch(() => {});
        for (const w of batch) w.reject(err);
        continue;
      }
      for (const w of batch) {
        segment.paths.add(w.path);
        w.resolve(segment);
      }
      if (segment.size >= this.o.segmentBytes || segment.records >= this.o.segmentRecords) await this.startNext().catch((err) => console.error('kiln: starting a new log segment failed:', err));
    }
  }

  private async startNext(): Promise<void> {
    const full = this.active;
    this.active = await newSegment(this.o.dir, full.seq + 1);
    this.o.onFull(full);
  }
}

/** Where the platform has it, a batch's write is then its sync too: one call through the thread pool instead of two. */
const HAS_DSYNC = constants.O_DSYNC !== undefined;
/**
 * 400 sequential appends to the log alone: ~0.02-0.04 ms less latency and up to ~0.1 ms
 * less CPU each (README, "Performance notes: how warm the engine is, and fewer
 * thread-pool hops per action").
 */
const SEGMENT_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (HAS_DSYNC ? constants.O_DSYNC : 0);

/** Creates segment `seq` and makes its name durable before anything relies on it. */
async function newSegment(dir: string, seq: number): Promise<Segment> {
  const path = join(dir, `${String(seq).padStart(12, '0')}${SEGMENT_SUFFIX}`);
  const fh = await open(path, SEGMENT_FLAGS, 0o600);
  await fsyncDir(dir);
  return new Segment(seq, path, fh, HAS_DSYNC);
}
