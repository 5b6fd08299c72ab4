// LogStream v1 over the LogHub. An action's stdout/stderr are named
// `{instance}/logstreams/{opId}-stdout|-stderr` (put into ExecuteOperationMetadata
// by the scheduler); CreateLogStream names `{parent}/logstreams/{id}` with a
// write resource `{name}/{secret}`. ByteStream Read of a log stream name stays
// open and delivers bytes as they are written, ending when the stream finishes.
//
// External writers: ByteStream Write to the write resource name appends to a file
// the LogHub tails (like an action's stdout), so any number of readers follow it
// at their own pace and never slow the writer. write_offset must equal the bytes
// committed so far; finish_write finalizes the stream; QueryWriteStatus answers
// committed_size and complete. Refusals: the read name → INVALID_ARGUMENT; an
// unknown (or forgotten) stream → NOT_FOUND; a wrong secret, or an action's own
// output stream → PERMISSION_DENIED (the read name already tells anyone the stream
// exists, so NOT_FOUND would hide nothing and only mislead); after finish_write or
// idle expiry → FAILED_PRECONDITION; past the byte cap → RESOURCE_EXHAUSTED.
// Bounds: a stream without writes for `idleMs` is finalized (readers end); finished
// streams stay readable under the LogHub's retention; at most `maxStreams` are
// remembered for writing (finished ones are forgotten first).
import type * as grpc from '@grpc/grpc-js';
import { constants } from 'node:fs';
import { open, truncate } from 'node:fs/promises';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { systemClock, uuidIds, type Clock, type IdSource } from '../clock';
import { GrpcError, Status, invalidArgument, notFound, resourceExhausted, toGrpcError, unary } from '../grpc/status';
import { logstream } from '../proto';
import type { LiveResourceReader, LiveResourceWriter, LiveWriteSession } from './bytestream';
import type { LogStreamName } from '../common/action-vocabulary';
import { LogNotFoundError, type LogHub } from '../logs/log-hub';

export interface LogStreamLimits {
  /** A created stream with no write for this long is finalized. */
  idleMs: number;
  /** Bytes one stream may hold; a write past it is RESOURCE_EXHAUSTED. */
  maxBytes: number;
  /** Created streams remembered for writing at once. */
  maxStreams: number;
}

export const DEFAULT_LOG_STREAM_LIMITS: LogStreamLimits = {
  idleMs: 60 * 60_000,
  maxBytes: 1024 ** 3,
  maxStreams: 1_000,
};

export interface LogStreamsOptions {
  ids?: IdSource;
  clock?: Clock;
  limits?: Partial<LogStreamLimits>;
}

const SEGMENT = 'logstreams';

type ParsedName =
  | { kind: 'read'; id: string }
  | { kind: 'write'; id: string; secret: string };

interface Target {
  logId: string;
  stream: LogStreamName;
}

interface Created extends Target {
  id: string;
  secret: string;
  path: string;
  /** Bytes appended and acknowledged. */
  committed: number;
  state: 'open' | 'finished' | 'expired';
  lastWriteAt: number;
  /** Appends to one stream run one at a time, in arrival order. */
  tail: Promise<void>;
}

export class LogStreams implements LiveResourceReader, LiveResourceWriter {
  /** CreateLogStream id → where its bytes live, its write secret and write state. Insertion order: oldest first. */
  private readonly created = new Map<string, Created>();
  private readonly ids: IdSource;
  private readonly clock: Clock;
  private readonly limits: LogStreamLimits;
  private sweepTimer?: { cancel(): void };
  private closed = false;

  constructor(
    private readonly hub: LogHub,
    opts: LogStreamsOptions = {},
  ) {
    this.ids = opts.ids ?? uuidIds;
    this.clock = opts.clock ?? systemClock;
    this.limits = { ...DEFAULT_LOG_STREAM_LIMITS, ...opts.limits };
    this.scheduleSweep();
  }

  /** Resource names of a (queued or running) action's output streams. */
  streamNamesFor(opId: string, instance: string): { stdout: string; stderr: string } {
    this.hub.expect(opId);
    const base = `${instance ? `${instance}/` : ''}${SEGMENT}/${encodeURIComponent(opId)}`;
    return { stdout: `${base}-stdout`, stderr: `${base}-stderr` };
  }

  /** CreateLogStream: a new stream under `parent`, tailable like an action's output. */
  createLogStream(parent: string): { name: string; writeResourceName: string } {
    if (parent !== '' && parent.split('/').some((seg) => ['', '.', '..', SEGMENT].includes(seg) || seg.includes('\0'))) {
      throw invalidArgument(
        `parent "${parent}" is not a valid resource name (no leading, trailing or doubled "/", no ".", ".." or "${SEGMENT}" segment, no NUL)`,
        'parent',
      );
    }
    const id = this.ids.next();
    const logId = `logstream:${id}`;
    const secret = randomBytes(16).toString('hex');
    const paths = this.hub.pathsFor(logId);
    this.makeRoom();
    this.hub.start(logId, paths);
    this.created.set(id, {
      id,
      logId,
      stream: 'stdout',
      secret,
      path: paths.stdout,
      committed: 0,
      state: 'open',
      lastWriteAt: this.clock.now(),
      tail: Promise.resolve(),
    });
    const name = `${parent ? `${parent}/` : ''}${SEGMENT}/${id}`;
    return { name, writeResourceName: `${name}/${secret}` };
  }

  owns(resourceName: string): boolean {
    return parseName(resourceName) !== undefined;
  }

  async read(
    resourceName: string,
    offset: number,
    limit: number,
    sink: (chunk: Buffer) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const parsed = parseName(resourceName);
    if (!parsed) throw invalidArgument(`"${resourceName}" is not a log stream name`, 'resource_name');
    if (parsed.kind === 'write') {
      throw invalidArgument(
        `"${resourceName}" is a log stream's write resource name; read the stream by its name (without the final secret segment)`,
        'resource_name',
      );
    }
    if (offset < 0 || limit < 0) throw invalidArgument('read_offset and read_limit must not be negative', 'read_offset');
    const target = this.resolve(parsed.id);
    const info = target && (await this.hub.info(target.logId, target.stream));
    if (!target || !info) throw notFound(`log stream "${resourceName}" does not exist or has been deleted by log retention`);
    if (info.finished && offset > info.size) {
      throw new GrpcError(Status.OUT_OF_RANGE, `read_offset ${offset} is past the end of the log (${info.size} bytes)`);
    }
    try {
      for await (const chunk of this.hub.read(target.logId, target.stream, { offset, limit, signal })) {
        await sink(chunk.data);
      }
    } catch (err) {
      if (err instanceof LogNotFoundError) throw notFound(err.message);
      throw err;
    }
  }

  /** ByteStream Write to a created stream's write resource name (see the header for refusals). */
  async openWrite(resourceName: string): Promise<LiveWriteSession> {
    const entry = this.writable(resourceName);
    this.checkOpen(entry, resourceName);
    return {
      get committedSize() {
        return entry.committed;
      },
      append: (offset, data) => this.append(entry, resourceName, offset, data),
      finish: () => this.finishWrite(entry, resourceName),
      close: () => undefined,
    };
  }

  async queryWriteStatus(resourceName: string): Promise<{ committedSize: number; complete: boolean }> {
    const entry = this.writable(resourceName);
    this.expireIfIdle(entry);
    await entry.tail; // Report what appends already accepted have written.
    return { committedSize: entry.committed, complete: entry.state === 'finished' };
  }

  /** Stops the idle sweep (the engine's clock timers are unref'd, so this is optional). */
  close(): void {
    this.closed = true;
    this.sweepTimer?.cancel();
  }

  /** Finalizes idle streams and forgets those whose logs retention deleted. Runs periodically. */
  sweep(): void {
    for (const entry of [...this.created.values()]) {
      this.expireIfIdle(entry);
      if (entry.state !== 'open' && !this.hub.has(entry.logId)) this.created.delete(entry.id);
    }
  }

  /** Counts for tests. */
  stats(): { remembered: number; open: number } {
    let open = 0;
    for (const e of this.created.values()) if (e.state === 'open') open++;
    return { remembered: this.created.size, open };
  }

  /** Handlers for engine/grpc/services LogStreamService. */
  service(): grpc.UntypedServiceImplementation {
    return {
      createLogStream: unary<logstream.CreateLogStreamRequest, logstream.LogStream>(async (req) => {
        const { name, writeResourceName } = this.createLogStream(req.parent ?? '');
        return logstream.LogStream.create({ name, writeResourceName });
      }),
    };
  }

  private resolve(id: string): Target | undefined {
    const created = this.created.get(id);
    if (created) return created;
    // Forgotten for writing (map bound) but still kept by log retention.
    if (this.hub.has(`logstream:${id}`)) return { logId: `logstream:${id}`, stream: 'stdout' };
    for (const stream of ['stdout', 'stderr'] as const) {
      if (id.endsWith(`-${stream}`)) {
        let opId: string;
        try {
          opId = decodeURIComponent(id.slice(0, -stream.length - 1));
        } catch {
          return undefined;
        }
        return { logId: opId, stream };
      }
    }
    return undefined;
  }

  /** The created stream a write resource name points at, with its secret checked. */
  private writable(resourceName: string): Created {
    const parsed = parseName(resourceName);
    if (!parsed) throw invalidArgument(`"${resourceName}" is not a log stream name`, 'resource_name');
    if (parsed.kind === 'read') {
      throw invalidArgument(
        `"${resourceName}" is a log stream's read name; write to the write_resource_name CreateLogStream returned ({name}/{secret})`,
        'resource_name',
      );
    }
    const entry = this.created.get(parsed.id);
    if (!entry) {
      if (this.resolve(parsed.id)) {
        throw new GrpcError(
          Status.PERMISSION_DENIED,
          `log stream "${parsed.id}" is not open to writers (an action's own output, or a stream no longer remembered for writing)`,
        );
      }
      throw notFound(`log stream "${parsed.id}" does not exist (never created, or expired and forgotten)`);
    }
    if (!sameSecret(parsed.secret, entry.secret)) {
      throw new GrpcError(Status.PERMISSION_DENIED, `wrong write secret for log stream "${parsed.id}"`);
    }
    return entry;
  }

  private checkOpen(entry: Created, resourceName: string): void {
    this.expireIfIdle(entry);
    if (entry.state === 'finished') {
      throw new GrpcError(
        Status.FAILED_PRECONDITION,
        `log stream "${resourceName}" was finished (finish_write) at ${entry.committed} bytes and takes no more writes`,
      );
    }
    if (entry.state === 'expired') {
      throw new GrpcError(
        Status.FAILED_PRECONDITION,
        `log stream "${resourceName}" expired after ${Math.round(this.limits.idleMs / 1000)}s without writes ` +
          `(${entry.committed} bytes kept) and takes no more writes; create a new one`,
      );
    }
  }

  /** Runs `fn` after every append already accepted for this stream. */
  private serial<T>(entry: Created, fn: () => Promise<T>): Promise<T> {
    const run = entry.tail.then(fn);
    entry.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private append(entry: Created, resourceName: string, offset: number, data: Buffer): Promise<void> {
    return this.serial(entry, async () => {
      this.checkOpen(entry, resourceName);
      if (offset !== entry.committed) {
        throw invalidArgument(
          `write_offset ${offset} does not continue log stream "${resourceName}": ${entry.committed} bytes are committed ` +
            '(call QueryWriteStatus and resume from committed_size)',
          'write_offset',
        );
      }
      if (entry.committed + data.byteLength > this.limits.maxBytes) {
        throw resourceExhausted(
          `log stream "${resourceName}" is limited to ${this.limits.maxBytes} bytes: ${entry.committed} are committed ` +
            `and this write adds ${data.byteLength}`,
        );
      }
      entry.lastWriteAt = this.clock.now();
      if (data.byteLength === 0) return;
      try {
        await writeAt(entry.path, data, entry.committed);
      } catch (err) {
        // Readers may have seen part of it; cut the file back to what is committed.
        await truncate(entry.path, entry.committed).catch(() => undefined);
        throw toGrpcError(err, `could not append to log stream "${resourceName}"`);
      }
      entry.committed += data.byteLength;
      entry.lastWriteAt = this.clock.now();
      this.hub.notify(entry.logId);
    });
  }

  private finishWrite(entry: Created, resourceName: string): Promise<void> {
    return this.serial(entry, async () => {
      this.checkOpen(entry, resourceName);
      entry.state = 'finished';
      await this.hub.finish(entry.logId);
    });
  }

  private expireIfIdle(entry: Created): void {
    if (entry.state !== 'open' || this.clock.now() - entry.lastWriteAt < this.limits.idleMs) return;
    entry.state = 'expired';
    void this.hub.finish(entry.logId);
  }

  /** Keeps the map under maxStreams: forgets finished streams first, then finalizes the longest idle. */
  private makeRoom(): void {
    if (this.created.size < this.limits.maxStreams) return;
    this.sweep();
    while (this.created.size >= this.limits.maxStreams) {
      let victim: Created | undefined;
      for (const e of this.created.values()) {
        if (e.state !== 'open') {
          victim = e;
          break;
        }
        if (!victim || e.lastWriteAt < victim.lastWriteAt) victim = e;
      }
      if (!victim) return;
      if (victim.state === 'open') {
        victim.state = 'expired';
        void this.hub.finish(victim.logId);
      }
      this.created.delete(victim.id);
    }
  }

  private scheduleSweep(): void {
    if (this.closed) return;
    const every = Math.max(1_000, Math.min(60_000, this.limits.idleMs / 4));
    this.sweepTimer = this.clock.setTimeout(() => {
      this.sweep();
      this.scheduleSweep();
    }, every);
  }
}

/** Positional write (no O_APPEND, so a failed partial write is overwritten by the retry). */
async function writeAt(path: string, data: Buffer, position: number): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT, 0o644);
  try {
    for (let done = 0; done < data.byteLength; ) {
      const { bytesWritten } = await fh.write(data, done, data.byteLength - done, position + done);
      done += bytesWritten;
    }
  } finally {
    await fh.close();
  }
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Parses from the end, so instance names may contain slashes. */
function parseName(name: string): ParsedName | undefined {
  const parts = name.split('/');
  const n = parts.length;
  if (n >= 2 && parts[n - 2] === SEGMENT && parts[n - 1]) return { kind: 'read', id: parts[n - 1] };
  if (n >= 3 && parts[n - 3] === SEGMENT && parts[n - 2] && parts[n - 1]) {
    return { kind: 'write', id: parts[n - 2], secret: parts[n - 1] };
  }
  return undefined;
}
