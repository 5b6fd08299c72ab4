import * as grpc from '@grpc/grpc-js';
import { appendFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus } from '../../engine/events/event-bus';
import { ByteStreamService, clients, LogStreamService } from '../../engine/grpc/services';
import { LogHub } from '../../engine/logs/log-hub';
import { bytestream, logstream } from '../../engine/proto';
import { createByteStreamService } from '../../engine/reapi/bytestream';
import { LogStreams } from '../../engine/reapi/logstream';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { tempDir, waitFor } from './helpers';

const timing = { queuedMs: 0, inputFetchMs: 0, executionMs: 0, outputUploadMs: 0, totalMs: 0 };

describe('LogStream over ByteStream', () => {
  const tmp = tempDir();
  const bus = new EventBus();
  const hub = new LogHub({ dir: tmp.dir, pollMs: 50 });
  hub.attach(bus);
  const streams = new LogStreams(hub);
  const server = new grpc.Server();
  let byteStream: InstanceType<typeof clients.ByteStream>;
  let logStream: InstanceType<typeof clients.LogStream>;

  beforeAll(async () => {
    server.addService(ByteStreamService, createByteStreamService({ store: new MemoryBlobStore(), liveReaders: [streams] }));
    server.addService(LogStreamService, streams.service());
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    byteStream = new clients.ByteStream(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    logStream = new clients.LogStream(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  afterAll(() => {
    byteStream.close();
    logStream.close();
    server.forceShutdown();
    hub.close();
    tmp.cleanup();
  });

  function read(resourceName: string, readOffset = 0) {
    const call = byteStream.makeServerStreamRequest(
      ByteStreamService.read.path,
      ByteStreamService.read.requestSerialize,
      ByteStreamService.read.responseDeserialize,
      bytestream.ReadRequest.create({ resourceName, readOffset }),
    ) as grpc.ClientReadableStream<bytestream.ReadResponse>;
    const chunks: Buffer[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (r: bytestream.ReadResponse) => chunks.push(Buffer.from(r.data)));
      call.on('end', resolve);
      call.on('error', reject);
    });
    return { text: () => Buffer.concat(chunks).toString(), done };
  }

  it('tails a running action through its stream name and ends when it finishes', async () => {
    const names = streams.streamNamesFor('op-1', 'main/inst');
    expect(names.stdout).toBe('main/inst/logstreams/op-1-stdout');
    expect(names.stderr).toBe('main/inst/logstreams/op-1-stderr');
    const paths = hub.pathsFor('op-1');
    bus.emit({ type: 'action.queued', id: 'op-1', at: 1, actionDigest: 'd', instance: 'main/inst' });
    // The reader attaches while the action is only queued.
    const out = read(names.stdout);
    const err = read(names.stderr, 2);
    bus.emit({ type: 'action.started', id: 'op-1', at: 2, slot: 0, stdoutPath: paths.stdout, stderrPath: paths.stderr });
    appendFileSync(paths.stdout, 'compiling a.c\n');
    appendFileSync(paths.stderr, 'warning: x\n');
    await waitFor(() => out.text() === 'compiling a.c\n', 'first stdout line while the action runs');
    appendFileSync(paths.stdout, 'linking\n');
    await waitFor(() => out.text().endsWith('linking\n'), 'second line');
    bus.emit({ type: 'action.finished', id: 'op-1', at: 3, outcome: 'success', exitCode: 0, timing });
    await Promise.all([out.done, err.done]);
    expect(out.text()).toBe('compiling a.c\nlinking\n');
    expect(err.text()).toBe('rning: x\n');
  }, 30_000);

  it('answers NOT_FOUND for an unknown stream and OUT_OF_RANGE past the end of a finished one', async () => {
    await expect(read('logstreams/nobody-stdout').done).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(read('main/inst/logstreams/op-1-stdout', 10_000).done).rejects.toMatchObject({ code: grpc.status.OUT_OF_RANGE });
  }, 30_000);

  it('creates log streams and refuses reads of a write resource name', async () => {
    const created = await new Promise<logstream.LogStream>((resolve, reject) =>
      logStream.makeUnaryRequest(
        LogStreamService.createLogStream.path,
        LogStreamService.createLogStream.requestSerialize,
        LogStreamService.createLogStream.responseDeserialize,
        logstream.CreateLogStreamRequest.create({ parent: 'tools/x' }),
        (e: grpc.ServiceError | null, r?: logstream.LogStream) => (e ? reject(e) : resolve(r!)),
      ),
    );
    expect(created.name).toMatch(/^tools\/x\/logstreams\/[^/]+$/);
    expect(created.writeResourceName.startsWith(`${created.name}/`)).toBe(true);
    await expect(read(created.writeResourceName).done).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    // A created stream exists: a reader waits on it rather than failing.
    expect(streams.owns(created.name)).toBe(true);
  }, 30_000);
});
