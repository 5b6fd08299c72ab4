// ByteStream service: streamed blob reads (with offset/limit), resumable
// uploads, and reads of live resources (log streams) owned by other components.
import type * as grpc from '@grpc/grpc-js';
import { digestKey } from '../digest';
import { bytestream } from '../proto';
import { BlobNotFoundError, DigestMismatchError, type BlobStore, type UploadSession } from '../store/blob-store';
import { GrpcError, Status, invalidArgument, notFound, toServiceError, unary } from '../grpc/status';
import { compressStream } from '../compression/zstd';
import { ConnectionStreamLimit } from '../grpc/connection-stream-limit';
import { SendWindow } from '../grpc/paced-writes';
import { CompressedUploads, type CompressedUpload } from './compressed-uploads';
import { parseReadResourceName, parseWriteResourceName, type UploadResource } from './resource-names';

/**
 * Largest data chunk in one ReadResponse, and what a read asks the store for at a
 * time (its read-ahead).
 */
export const MAX_READ_CHUNK_BYTES = 64 * 1024;

/**
 * Bytes of one read written but not yet sent (HTTP/2 flow control), at the start and
 * at most: the window grows by what the client takes (SendWindow), so a paused
 * reader pins about three chunks and a fast one gets a full pipe.
 */
export const READ_SEND_WINDOW_BYTES = { initial: 2 * MAX_READ_CHUNK_BYTES, max: 16 * MAX_READ_CHUNK_BYTES };

/**
 * Data per ReadResponse of a blob for a send window of `windowBytes`: one chunk
 * while the window is small (a slow or paused reader), up to 1 MiB once the client
 * has shown it takes data fast (fewer, larger messages cost less per byte).
 */
export function messageBytesFor(windowBytes: number): number {
  return Math.min(1024 * 1024, Math.max(MAX_READ_CHUNK_BYTES, Math.floor(windowBytes / 4 / MAX_READ_CHUNK_BYTES) * MAX_READ_CHUNK_BYTES));
}

/** Concurrent ByteStream reads one client connection may hold open (Bazel uses at most ~100 calls per connection). */
export const MAX_READS_PER_CONNECTION = 256;

/**
 * Bytes of one Write stream handed to the store but not yet written. Below this the
 * stream keeps reading the next messages while the disk catches up; above it, it waits.
 */
export const WRITE_WINDOW_BYTES = 8 * 1024 * 1024;

/** A ByteStream resource that is not a CAS blob, e.g. a log stream still being written. */
export interface LiveResourceReader {
  /** True when this reader serves `resourceName` (checked before blob names are parsed). */
  owns(resourceName: string): boolean;
  /** Streams [offset, offset+limit) into `sink` (limit 0: no limit); resolves when finished; throws GrpcError. */
  read(
    resourceName: string,
    offset: number,
    limit: number,
    sink: (chunk: Buffer) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void>;
}

/** One Write call's hold on a live resource (see LiveResourceWriter.openWrite). */
export interface LiveWriteSession {
  /** Bytes of the resource committed so far (by this call or earlier ones). */
  readonly committedSize: number;
  /** Appends `data` at `offset`, which must equal committedSize; throws GrpcError. */
  append(offset: number, data: Buffer): Promise<void>;
  /** finish_write: the resource is complete and takes no more bytes. */
  finish(): Promise<void>;
  /** The call ended (with or without finish_write, or failed); the resource stays as it is. */
  close(): void;
}

/**
 * A ByteStream resource that is written by clients but is not a CAS upload, e.g. a
 * log stream made with CreateLogStream. Checked before upload names are parsed.
 */
export interface LiveResourceWriter {
  /** True when this writer answers Write and QueryWriteStatus for `resourceName` (it may refuse it). */
  owns(resourceName: string): boolean;
  /** Checks the name (and any secret in it) and starts one Write call; throws GrpcError. */
  openWrite(resourceName: string): Promise<LiveWriteSession>;
  queryWriteStatus(resourceName: string): Promise<{ committedSize: number; complete: boolean }>;
}

export interface ByteStreamOptions {
  store: BlobStore;
  liveReaders?: LiveResourceReader[];
  liveWriters?: LiveResourceWriter[];
  /** Resumable zstd uploads in progress (one is made when not given). */
  compressedUploads?: CompressedUploads;
  /** Concurrent reads per client connection (default MAX_READS_PER_CONNECTION). */
  maxReadsPerConnection?: number;
}

/** committed_size that ends a compressed upload early because the blob is already stored (REAPI v2.3). */
const COMPRESSED_ALREADY_STORED = -1;

export function createByteStreamService(opts: ByteStreamOptions): grpc.UntypedServiceImplementation {
  const { store } = opts;
  const liveReaders = opts.liveReaders ?? [];
  const liveWriters = opts.liveWriters ?? [];
  const uploadLocks = new KeyedLock();
  const compressedUploads = opts.compressedUploads ?? new CompressedUploads(store);
  const readLimit = new ConnectionStreamLimit(opts.maxReadsPerConnection ?? MAX_READS_PER_CONNECTION, 'ByteStream reads');

  return {
    async read(call: grpc.ServerWritableStream<bytestream.ReadRequest, bytestream.ReadResponse>) {
      const signal = callAbortSignal(call);
      let release: (() => void) | undefined;
      try {
        release = readLimit.acquire(call.getPeer());
        const { resourceName } = call.request;
        const offset = int64(call.request.readOffset);
        const limit = int64(call.request.readLimit);
        if (offset < 0) throw new GrpcError(Status.OUT_OF_RANGE, `read_offset ${offset} is negative`);
        if (limit < 0) throw invalidArgument(`read_limit ${limit} is negative; use 0 to read to the end`, 'read_limit');
        // Never far ahead of the client: the next chunk is read only once the window has room.
        const window = new SendWindow(call, signal, READ_SEND_WINDOW_BYTES.initial, READ_SEND_WINDOW_BYTES.max);
        const sink = (chunk: Buffer) => window.send(bytestream.ReadResponse.create({ data: chunk }), chunk.byteLength);

        const live = liveReaders.find((r) => r.owns(resourceName));
        if (live) {
          await live.read(resourceName, offset, limit, sink, signal); // a live tail sends what it has at once
        } else {
          const messages = new Coalescer(sink, () => messageBytesFor(window.limitBytes));
          await readBlob(store, resourceName, offset, limit, (chunk) => messages.add(chunk), signal);
          await messages.flush();
        }
        if (!signal.aborted) call.end();
      } catch (err) {
        // A cancelled call has no one to tell.
        if (!signal.aborted) call.emit('error', toServiceError(err));
      } finally {
        release?.();
      }
    },

    async write(
      call: grpc.ServerReadableStream<bytestream.WriteRequest, bytestream.WriteResponse>,
      callback: grpc.sendUnaryData<bytestream.WriteResponse>,
    ) {
      let release: (() => void) | undefined;
      const window = new AppendWindow(WRITE_WINDOW_BYTES);
      // One iterator, so a live resource's handler can take over the rest of the stream.
      const messages = (call as AsyncIterable<bytestream.WriteRequest>)[Symbol.asyncIterator]();
      try {
        let upload: UploadResource | undefined;
        let session: UploadSession | undefined;
        let firstName = '';
        for await (const req of { [Symbol.asyncIterator]: () => messages }) {
          if (!upload || !session) {
            firstName = req.resourceName;
            if (!firstName) throw invalidArgument('the first WriteRequest must set resource_name', 'resource_name');
            const live = liveWriters.find((w) => w.owns(firstName));
            if (live) {
              const committedSize = await writeLive(live, req, messages);
              return callback(null, bytestream.WriteResponse.create({ committedSize }));
            }
            upload = parseWriteResourceName(firstName);
            const alreadyStored = upload.compressor ? COMPRESSED_ALREADY_STORED : upload.digest.size;
            if (await store.has(upload.digest)) {
              // Someone already uploaded it: end early, the client stops sending.
              return callback(null, bytestream.WriteResponse.create({ committedSize: alreadyStored }));
            }
            // One stream at a time per upload: a resumed stream waits for the one it replaces to wind down.
            release = await uploadLocks.acquire(`${upload.uploadId}/${upload.compressor ?? ''}/${digestKey(upload.digest)}`);
            if (await store.has(upload.digest)) {
              return callback(null, bytestream.WriteResponse.create({ committedSize: alreadyStored }));
            }
            if (upload.compressor) {
              const committedSize = await writeCompressed(compressedUploads, upload, req, messages);
              return callback(null, bytestream.WriteResponse.create({ committedSize }));
            }
            session = await openAt(store, upload, int64(req.writeOffset));
          } else {
            if (req.resourceName && req.resourceName !== firstName) {
              throw invalidArgument(
                `resource_name changed within one write stream ("${firstName}" → "${req.resourceName}")`,
                'resource_name',
              );
            }
            window.throwIfFailed(); // A failed write says more than the offset mismatch it causes.
            if (int64(req.writeOffset) !== session.committedSize) {
              await window.drain(); // an append refused meanwhile (store full) explains the gap, and is the answer
              throw invalidArgument(
                `write_offset ${int64(req.writeOffset)} does not continue the upload: ${session.committedSize} bytes are committed`,
                'write_offset',
              );
            }
          }
          const size = upload.digest.size;
          if (session.committedSize + req.data.byteLength > size) {
            await session.abort();
            throw invalidArgument(
              `upload of ${upload.digest.hash} sent more than its declared ${size} bytes; the partial upload was discarded`,
            );
          }
          if (req.data.byteLength > 0) await window.add(session.append(req.data), req.data.byteLength);
          if (req.finishWrite) {
            await window.drain();
            await commit(session, upload);
            return callback(null, bytestream.WriteResponse.create({ committedSize: size }));
          }
        }
        if (!upload || !session) throw invalidArgument('the write stream carried no requests', 'resource_name');
        // Ended without finish_write: keep the bytes so a later stream can resume.
        await window.drain();
        callback(null, bytestream.WriteResponse.create({ committedSize: session.committedSize }));
      } catch (err) {
        if (call.cancelled) return; // The client went away; its partial upload stays resumable.
        callback(toServiceError(err));
      } finally {
        // A stream resuming this upload must find every byte accepted here already in place.
        await window.settled();
        release?.();
      }
    },

    queryWriteStatus: unary<bytestream.QueryWriteStatusRequest, bytestream.QueryWriteStatusResponse>(async (req) => {
      const live = liveWriters.find((w) => w.owns(req.resourceName));
      if (live) {
        return bytestream.QueryWriteStatusResponse.create(await live.queryWriteStatus(req.resourceName));
      }
      const upload = parseWriteResourceName(req.resourceName);
      const { digest, uploadId } = upload;
      if (await store.has(digest)) {
        const committedSize = upload.compressor ? COMPRESSED_ALREADY_STORED : digest.size;
        return bytestream.QueryWriteStatusResponse.create({ committedSize, complete: true });
      }
      if (upload.compressor) {
        return bytestream.QueryWriteStatusResponse.create({ committedSize: await compressedUploads.status(upload), complete: false });
      }
      const committed = (await store.uploadStatus(digest, uploadId)) ?? 0;
      return bytestream.QueryWriteStatusResponse.create({ committedSize: committed, complete: false });
    }),
  };
}

/**
 * Feeds one Write call of a compressed upload, `first` and then the rest of `messages`,
 * through its decoder into the store. Returns the compressed bytes committed. Any
 * failure discards the upload: nothing of a bad stream is stored.
 */
async function writeCompressed(
  uploads: CompressedUploads,
  upload: UploadResource,
  first: bytestream.WriteRequest,
  messages: AsyncIterator<bytestream.WriteRequest>,
): Promise<number> {
  const name = first.resourceName;
  let session: CompressedUpload | undefined;
  try {
    session = await uploads.openAt(upload, int64(first.writeOffset));
    for (let req: bytestream.WriteRequest | undefined = first; req; ) {
      if (req !== first) {
        if (req.resourceName && req.resourceName !== name) {
          throw invalidArgument(`resource_name changed within one write stream ("${name}" → "${req.resourceName}")`, 'resource_name');
        }
        if (int64(req.writeOffset) !== session.committedSize) {
          throw invalidArgument(
            `write_offset ${int64(req.writeOffset)} does not continue the upload: ${session.committedSize} compressed bytes are committed`,
            'write_offset',
          );
        }
      }
      if (req.data.byteLength > 0) await session.append(req.data);
      if (req.finishWrite) {
        await session.commit();
        await uploads.forget(upload);
        return session.committedSize;
      }
      const next: IteratorResult<bytestream.WriteRequest> = await messages.next();
      req = next.done ? undefined : next.value;
    }
    // Ended without finish_write: the decoder keeps its place for a resumed stream, the spool for one after a restart.
    await session.persist();
    return session.committedSize;
  } catch (err) {
    if (session) await uploads.discard(upload);
    throw err;
  }
}

/**
 * Feeds one Write call to a live resource: `first` and then the rest of `messages`,
 * each appended in order. Returns the committed size to answer with.
 */
async function writeLive(
  writer: LiveResourceWriter,
  first: bytestream.WriteRequest,
  messages: AsyncIterator<bytestream.WriteRequest>,
): Promise<number> {
  const name = first.resourceName;
  const session = await writer.openWrite(name);
  try {
    for (let req: bytestream.WriteRequest | undefined = first; req; ) {
      if (req.resourceName && req.resourceName !== name) {
        throw invalidArgument(`resource_name changed within one write stream ("${name}" → "${req.resourceName}")`, 'resource_name');
      }
      await session.append(int64(req.writeOffset), Buffer.from(req.data.buffer, req.data.byteOffset, req.data.byteLength));
      if (req.finishWrite) {
        await session.finish();
        return session.committedSize;
      }
      const next: IteratorResult<bytestream.WriteRequest> = await messages.next();
      req = next.done ? undefined : next.value;
    }
    // Ended without finish_write: what was appended stays, and a later call continues it.
    return session.committedSize;
  } finally {
    session.close();
  }
}

async function readBlob(
  store: BlobStore,
  resourceName: string,
  offset: number,
  limit: number,
  sink: (chunk: Buffer) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  const { digest, compressor } = parseReadResourceName(resourceName);
  if (compressor) return readCompressed(store, digest, offset, limit, sink, signal);
  if (offset > digest.size) {
    throw new GrpcError(Status.OUT_OF_RANGE, `read_offset ${offset} is past the end of the ${digest.size}-byte blob`);
  }
  let source;
  try {
    source = await store.read(digest, { offset, limit, chunkBytes: MAX_READ_CHUNK_BYTES });
  } catch (err) {
    if (err instanceof BlobNotFoundError) throw notFound(err.message);
    throw err;
  }
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      for (let at = 0; at < chunk.byteLength && !signal.aborted; at += MAX_READ_CHUNK_BYTES) {
        await sink(chunk.subarray(at, at + MAX_READ_CHUNK_BYTES));
      }
      if (signal.aborted) break;
    }
  } catch (err) {
    // Found bad while streaming and dropped (linked-blob-verifier.ts): the client uploads it again.
    if (err instanceof BlobNotFoundError) throw notFound(err.message);
    throw err;
  } finally {
    source.destroy();
  }
}

/**
 * Streams the blob zstd-compressed; read_offset and read_limit count compressed bytes
 * (our compressed form of a blob is the same on every read, so a resumed read fits).
 */
async function readCompressed(
  store: BlobStore,
  digest: UploadResource['digest'],
  offset: number,
  limit: number,
  sink: (chunk: Buffer) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  let source;
  try {
    source = await store.read(digest, { chunkBytes: MAX_READ_CHUNK_BYTES });
  } catch (err) {
    if (err instanceof BlobNotFoundError) throw notFound(err.message);
    throw err;
  }
  let at = 0; // compressed bytes produced so far
  const end = limit > 0 ? offset + limit : Infinity;
  try {
    for await (const chunk of compressStream(source as AsyncIterable<Buffer>)) {
      if (signal.aborted) break;
      const from = Math.max(0, offset - at);
      const to = Math.min(chunk.byteLength, end - at);
      at += chunk.byteLength;
      for (let i = from; i < to && !signal.aborted; i += MAX_READ_CHUNK_BYTES) {
        await sink(chunk.subarray(i, Math.min(to, i + MAX_READ_CHUNK_BYTES)));
      }
      if (at >= end) break;
    }
  } finally {
    source.destroy();
  }
  if (offset > at && !signal.aborted) {
    throw new GrpcError(Status.OUT_OF_RANGE, `read_offset ${offset} is past the end of the ${at}-byte compressed blob`);
  }
}

/** Opens the upload at the client's offset: 0 restarts it, anything else must match what is committed. */
async function openAt(store: BlobStore, upload: UploadResource, writeOffset: number): Promise<UploadSession> {
  let session = await store.openUpload(upload.digest, upload.uploadId);
  if (writeOffset === session.committedSize) return session;
  if (writeOffset === 0) {
    await session.abort();
    session = await store.openUpload(upload.digest, upload.uploadId);
    return session;
  }
  // A refused first write must not leave an empty partial file behind for every bad offset.
  if (session.committedSize === 0) await session.abort();
  throw invalidArgument(
    `write_offset ${writeOffset} does not match the ${session.committedSize} bytes committed for this upload; ` +
      'call QueryWriteStatus and resume from committed_size, or restart at 0',
    'write_offset',
  );
}

async function commit(session: UploadSession, upload: UploadResource): Promise<void> {
  try {
    await session.commit();
  } catch (err) {
    if (!(err instanceof DigestMismatchError)) throw err;
    await session.abort().catch(() => undefined); // Already gone in most stores; never keep bad bytes.
    throw invalidArgument(`upload of ${upload.digest.hash}/${upload.digest.size} rejected: ${err.message}`);
  }
}

/** int64 fields may decode as Long objects; offsets here are always within safe integers. */
function int64(value: unknown): number {
  return Number(value ?? 0);
}

/**
 * The reason a call's signal aborts with. Given, so that abort() does not build a
 * DOMException (a stack capture) per call: grpc-js (1.10+) emits 'cancelled' at the end of
 * every call, even one that ended normally; 0.07 ms per action in a profile of serve under Bazel.
 */
const CALL_CANCELLED = new Error('the client cancelled the call');

/** Aborts when the client cancels the call, so producers stop early. */
export function callAbortSignal(call: { cancelled: boolean; on(event: 'cancelled', fn: () => void): unknown }): AbortSignal {
  const ac = new AbortController();
  if (call.cancelled) ac.abort(CALL_CANCELLED);
  else call.on('cancelled', () => ac.abort(CALL_CANCELLED));
  return ac.signal;
}

/** Writes one message and waits for 'drain' when the transport buffer is full (or the call is cancelled). */
export function writeWithBackpressure<T>(
  call: grpc.ServerWritableStream<unknown, T>,
  message: T,
  signal: AbortSignal,
): Promise<void> {
  if (signal.aborted || call.write(message)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    call.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Appends in flight for one Write stream: lets the stream read ahead of the disk by up
 * to `limit` bytes, and remembers the first failure so it is reported, not swallowed.
 */
class AppendWindow {
  private inFlight: { done: Promise<void>; settled: boolean }[] = [];
  private bytes = 0;
  private failed = false;
  private failure: unknown;

  constructor(private readonly limit: number) {}

  /** Tracks one append; resolves when the stream may read on. */
  async add(append: Promise<void>, size: number): Promise<void> {
    this.throwIfFailed();
    this.bytes += size;
    const entry = { done: Promise.resolve(), settled: false };
    entry.done = append.then(
      () => this.settle(entry, size),
      (err: unknown) => {
        this.settle(entry, size);
        if (!this.failed) {
          this.failed = true;
          this.failure = err;
        }
      },
    );
    this.inFlight.push(entry);
    while (this.bytes > this.limit && !this.failed) await this.inFlight[0]!.done;
    this.throwIfFailed();
  }

  /** Waits for every append; throws the first failure. */
  async drain(): Promise<void> {
    await this.settled();
    this.throwIfFailed();
  }

  /** Waits for every append, failed or not. */
  async settled(): Promise<void> {
    await Promise.all(this.inFlight.map((e) => e.done));
  }

  throwIfFailed(): void {
    if (this.failed) throw this.failure;
  }

  private settle(entry: { settled: boolean }, size: number): void {
    entry.settled = true;
    this.bytes -= size;
    while (this.inFlight[0]?.settled) this.inFlight.shift();
  }
}

/** Joins consecutive chunks into messages of up to `target()` bytes before handing them to `send`. */
class Coalescer {
  private pieces: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly send: (data: Buffer) => Promise<void>,
    private readonly target: () => number,
  ) {}

  async add(chunk: Buffer): Promise<void> {
    this.pieces.push(chunk);
    this.size += chunk.byteLength;
    if (this.size >= this.target()) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.size === 0) return;
    const data = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.size);
    this.pieces = [];
    this.size = 0;
    await this.send(data);
  }
}

/** Serialises work per key; acquire resolves with a release function. */
class KeyedLock {
  private tails = new Map<string, Promise<void>>();

  async acquire(key: string): Promise<() => void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    return () => {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}
