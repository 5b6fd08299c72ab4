// LogStream v1 for external writers: CreateLogStream, then ByteStream Write to the
// write resource name while readers tail `name`, over real gRPC.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { EventBus } from '../../engine/events/event-bus';
import { ByteStreamService, LogStreamService } from '../../engine/grpc/services';
import { LogHub } from '../../engine/logs/log-hub';
import { bytestream, logstream } from '../../engine/proto';
import { createByteStreamService } from '../../engine/reapi/bytestream';
import { LogStreams, type LogStreamsOptions } from '../../engine/reapi/logstream';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { connectClients, grpcError, Status, type KilnClients } from '../helpers';
import { tempDir, waitFor } from './helpers';

interface Harness {
  hub: LogHub;
  streams: LogStreams;
  c: KilnClients;
  create(parent?: string): Promise<logstream.LogStream>;
  tail(name: string, readOffset?: number): Tail;
  stop(): void;
}

interface Tail {
  call: grpc.ClientReadableStream<bytestream.ReadResponse>;
  chunks: Buffer[];
  bytes(): Buffer;
  text(): string;
  done: Promise<void>;
}

async function startHarness(opts: LogStreamsOptions = {}): Promise<Harness> {
  const tmp = tempDir();
  const bus = new EventBus();
  const hub = new LogHub({ dir: tmp.dir, pollMs: 50 });
  hub.attach(bus);
  const streams = new LogStreams(hub, opts);
  const server = new grpc.Server();
  server.addService(
    ByteStreamService,
    createByteStreamService({ store: new MemoryBlobStore(), liveReaders: [streams], liveWriters: [streams] }),
  );
  server.addService(LogStreamService, streams.service());
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const c = connectClients(`127.0.0.1:${port}`);
  const createLogStream = (c.raw.LogStream as unknown as {
    createLogStream(req: logstream.CreateLogStreamRequest.$Properties, cb: (e: grpc.ServiceError | null, r?: logstream.LogStream) => void): void;
  }).createLogStream.bind(c.raw.LogStream);
  return {
    hub,
    streams,
    c,
    create: (parent = 'tools/ci') =>
      new Promise((resolve, reject) => createLogStream({ parent }, (e, r) => (e ? reject(e) : resolve(r!)))),
    tail: (name, readOffset = 0) => {
      const call = c.byteStream.openRead({ resourceName: name, readOffset });
      const chunks: Buffer[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (r: bytestream.ReadResponse) => chunks.push(Buffer.from(r.data)));
        call.on('end', resolve);
        call.on('error', reject);
      });
      const bytes = () => Buffer.concat(chunks);
      return { call, chunks, bytes, text: () => bytes().toString(), done };
    },
    stop: () => {
      c.close();
      server.forceShutdown();
      streams.close();
      hub.close();
      tmp.cleanup();
    },
  };
}

const enc = (s: string) => Buffer.from(s);

describe('LogStream written by an external client', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h?.stop());

  it('streams each write to readers that started before any byte, and ends them at finish_write', async () => {
    const { name, writeResourceName } = await h.create();
    const early = h.tail(name);
    const fromOffset = h.tail(name, 3);
    const w = h.c.byteStream.openWrite();
    w.call.write({ resourceName: writeResourceName, writeOffset: 0, data: enc('one\n') });
    await waitFor(() => early.text() === 'one\n', 'the first write at the reader before the next is sent');
    w.call.write({ writeOffset: 4, data: enc('two\n') });
    await waitFor(() => early.text() === 'one\ntwo\n', 'the second write at the reader');
    // Readers are still open: nothing has finished the stream.
    expect((await h.c.byteStream.queryWriteStatus({ resourceName: writeResourceName })).complete).toBe(false);
    w.call.write({ writeOffset: 8, data: enc('three\n'), finishWrite: true });
    w.call.end();
    expect(Number((await w.response).committedSize)).toBe(14);
    await Promise.all([early.done, fromOffset.done]);
    expect(early.text()).toBe('one\ntwo\nthree\n');
    expect(early.chunks.length).toBeGreaterThanOrEqual(2);
    expect(fromOffset.text()).toBe('\ntwo\nthree\n');
    // A reader arriving after the finish gets the whole log and ends.
    expect((await h.c.byteStream.read({ resourceName: name })).data.toString()).toBe('one\ntwo\nthree\n');
    const st = await h.c.byteStream.queryWriteStatus({ resourceName: writeResourceName });
    expect({ committed: Number(st.committedSize), complete: st.complete }).toEqual({ committed: 14, complete: true });
  }, 30_000);

  it('never holds the writer back for a reader that is not reading', async () => {
    const { name, writeResourceName } = await h.create();
    const slow = h.tail(name);
    slow.call.pause();
    const payload = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
    const reqs = [];
    for (let at = 0; at < payload.length; at += 256 * 1024) {
      reqs.push({ writeOffset: at, data: payload.subarray(at, at + 256 * 1024) });
    }
    reqs[0] = { ...reqs[0]!, resourceName: writeResourceName };
    reqs[reqs.length - 1] = { ...reqs[reqs.length - 1]!, finishWrite: true };
    // The whole write completes while the reader has taken (at most) a few flow-control windows.
    expect(Number((await h.c.byteStream.write(reqs)).committedSize)).toBe(payload.length);
    expect(slow.bytes().length).toBeLessThan(payload.length);
    slow.call.resume();
    await slow.done;
    expect(slow.bytes().equals(payload)).toBe(true);
  }, 60_000);

  it('resumes at the committed size across write calls, as QueryWriteStatus reports it', async () => {
    const { name, writeResourceName } = await h.create();
    const first = await h.c.byteStream.write([
      { resourceName: writeResourceName, writeOffset: 0, data: enc('abc') },
      { writeOffset: 3, data: enc('de') },
    ]);
    expect(Number(first.committedSize)).toBe(5);
    const st = await h.c.byteStream.queryWriteStatus({ resourceName: writeResourceName });
    expect({ committed: Number(st.committedSize), complete: st.complete }).toEqual({ committed: 5, complete: false });
    const second = await h.c.byteStream.write([
      { resourceName: writeResourceName, writeOffset: Number(st.committedSize), data: enc('fg'), finishWrite: true },
    ]);
    expect(Number(second.committedSize)).toBe(7);
    expect((await h.c.byteStream.read({ resourceName: name })).data.toString()).toBe('abcdefg');
  }, 30_000);

  it('refuses a write_offset other than the committed size, naming both', async () => {
    const { writeResourceName } = await h.create();
    await h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 0, data: enc('abc') }]);
    const ahead = await grpcError(h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 10, data: enc('x') }]));
    expect(ahead.code).toBe(Status.INVALID_ARGUMENT);
    expect(ahead.details).toMatch(/write_offset 10\b.*\b3 bytes are committed/);
    // Restarting at 0 is no exception: a log stream only grows.
    const restart = await grpcError(h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 0, data: enc('x') }]));
    expect(restart.code).toBe(Status.INVALID_ARGUMENT);
    // Within one call, the second message must continue the first.
    const gap = await grpcError(
      h.c.byteStream.write([
        { resourceName: writeResourceName, writeOffset: 3, data: enc('d') },
        { writeOffset: 5, data: enc('f') },
      ]),
    );
    expect(gap.code).toBe(Status.INVALID_ARGUMENT);
    expect(gap.details).toMatch(/write_offset 5\b.*\b4 bytes are committed/);
    const st = await h.c.byteStream.queryWriteStatus({ resourceName: writeResourceName });
    expect(Number(st.committedSize)).toBe(4);
  }, 30_000);

  it('refuses writes to the read name, with a wrong secret, to unknown streams and to actions\' own logs', async () => {
    const { name, writeResourceName } = await h.create();
    const toRead = await grpcError(h.c.byteStream.write([{ resourceName: name, writeOffset: 0, data: enc('x') }]));
    expect(toRead.code).toBe(Status.INVALID_ARGUMENT);
    expect(toRead.details).toMatch(/read name.*write_resource_name/);
    expect((await grpcError(h.c.byteStream.queryWriteStatus({ resourceName: name }))).code).toBe(Status.INVALID_ARGUMENT);

    const wrong = `${name}/${'0'.repeat(32)}`;
    expect(wrong).not.toBe(writeResourceName);
    const denied = await grpcError(h.c.byteStream.write([{ resourceName: wrong, writeOffset: 0, data: enc('x') }]));
    expect(denied.code).toBe(Status.PERMISSION_DENIED);
    expect(denied.details).toMatch(/wrong write secret/);
    expect((await grpcError(h.c.byteStream.queryWriteStatus({ resourceName: wrong }))).code).toBe(Status.PERMISSION_DENIED);

    const unknown = await grpcError(
      h.c.byteStream.write([{ resourceName: 'tools/ci/logstreams/nobody/secret', writeOffset: 0, data: enc('x') }]),
    );
    expect(unknown.code).toBe(Status.NOT_FOUND);

    // An action's output stream: its name is a read name, and with any "secret" appended it is still not writable.
    const names = h.streams.streamNamesFor('op-9', 'main');
    h.hub.start('op-9', h.hub.pathsFor('op-9'));
    expect((await grpcError(h.c.byteStream.write([{ resourceName: names.stdout, data: enc('x') }]))).code).toBe(
      Status.INVALID_ARGUMENT,
    );
    const forged = await grpcError(h.c.byteStream.write([{ resourceName: `${names.stdout}/x`, data: enc('x') }]));
    expect(forged.code).toBe(Status.PERMISSION_DENIED);
    expect((await h.hub.info('op-9', 'stdout'))!.size).toBe(0);
    // Nothing reached the created stream either.
    expect(Number((await h.c.byteStream.queryWriteStatus({ resourceName: writeResourceName })).committedSize)).toBe(0);
  }, 30_000);

  it('refuses writes after finish_write with FAILED_PRECONDITION', async () => {
    const { writeResourceName } = await h.create();
    await h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 0, data: enc('done'), finishWrite: true }]);
    const after = await grpcError(h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 4, data: enc('more') }]));
    expect(after.code).toBe(Status.FAILED_PRECONDITION);
    expect(after.details).toMatch(/finished.*4 bytes.*no more writes/);
    const again = await grpcError(h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 4, finishWrite: true }]));
    expect(again.code).toBe(Status.FAILED_PRECONDITION);
  }, 30_000);
});

describe('LogStream bounds', () => {
  const clock = new ManualClock();
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ clock, limits: { idleMs: 60_000, maxBytes: 10, maxStreams: 3 } });
  });
  afterAll(() => h?.stop());

  it('caps the bytes of one stream with RESOURCE_EXHAUSTED and keeps what fit', async () => {
    const { name, writeResourceName } = await h.create();
    await h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 0, data: enc('12345678') }]);
    const over = await grpcError(h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 8, data: enc('9ab') }]));
    expect(over.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(over.details).toMatch(/10 bytes/);
    const fits = await h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 8, data: enc('9a'), finishWrite: true }]);
    expect(Number(fits.committedSize)).toBe(10);
    expect((await h.c.byteStream.read({ resourceName: name })).data.toString()).toBe('123456789a');
  }, 30_000);

  it('finalizes a stream left without writes for idleMs: readers end, writes are refused', async () => {
    const { name, writeResourceName } = await h.create();
    await h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 0, data: enc('hi') }]);
    const reader = h.tail(name);
    await waitFor(() => reader.text() === 'hi', 'the reader to catch up');
    clock.advance(30_000);
    // Not idle long enough yet: still writable.
    await h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 2, data: enc('!') }]);
    clock.advance(60_000 + 15_000); // idleMs, plus the sweep's period (idleMs / 4)
    await reader.done;
    expect(reader.text()).toBe('hi!');
    const late = await grpcError(h.c.byteStream.write([{ resourceName: writeResourceName, writeOffset: 3, data: enc('x') }]));
    expect(late.code).toBe(Status.FAILED_PRECONDITION);
    expect(late.details).toMatch(/expired/);
    const st = await h.c.byteStream.queryWriteStatus({ resourceName: writeResourceName });
    expect({ committed: Number(st.committedSize), complete: st.complete }).toEqual({ committed: 3, complete: false });
  }, 30_000);

  it('remembers at most maxStreams for writing: finished ones go first, then the longest idle is finalized', async () => {
    // Start from a full map of open streams.
    for (let i = 0; i < 3; i++) await h.create();
    expect(h.streams.stats()).toEqual({ remembered: 3, open: 3 });
    const a = await h.create();
    const b = await h.create();
    const c = await h.create();
    expect(h.streams.stats()).toEqual({ remembered: 3, open: 3 });
    const aReader = h.tail(a.name);
    await h.c.byteStream.write([{ resourceName: a.writeResourceName, writeOffset: 0, data: enc('a'), finishWrite: true }]);
    clock.advance(1); // b is now the longest idle open stream; c was written after it.
    await h.c.byteStream.write([{ resourceName: c.writeResourceName, writeOffset: 0, data: enc('c') }]);
    const bReader = h.tail(b.name);

    const d = await h.create(); // a (finished) is forgotten; everything open stays.
    expect(h.streams.stats()).toEqual({ remembered: 3, open: 3 });
    await aReader.done;
    expect((await h.c.byteStream.read({ resourceName: a.name })).data.toString()).toBe('a'); // still readable under log retention
    expect((await grpcError(h.c.byteStream.queryWriteStatus({ resourceName: a.writeResourceName }))).code).toBe(
      Status.PERMISSION_DENIED,
    );

    await h.create(); // No finished stream left: b, the longest idle, is finalized and forgotten.
    expect(h.streams.stats()).toEqual({ remembered: 3, open: 3 });
    await bReader.done;
    expect((await grpcError(h.c.byteStream.write([{ resourceName: b.writeResourceName, writeOffset: 0, data: enc('b') }]))).code).toBe(
      Status.PERMISSION_DENIED,
    );
    // c and d are still writable.
    await h.c.byteStream.write([{ resourceName: c.writeResourceName, writeOffset: 1, data: enc('c') }]);
    await h.c.byteStream.write([{ resourceName: d.writeResourceName, writeOffset: 0, data: enc('d') }]);
  }, 30_000);
});
