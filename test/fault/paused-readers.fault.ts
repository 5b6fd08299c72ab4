// Many ByteStream readers of a 3 MiB blob that stop taking data: `kiln serve` must
// follow each client's pace (HTTP/2 flow control) instead of reading the blob
// ahead into memory, so its RSS grows by a small, blob-size-independent amount per reader.
// KILN_FAULT_READERS sets the number of paused readers (default 400).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteStreamService } from '../../engine/grpc/services';
import { bytestream, encode } from '../../engine/proto';
import { Status, digestOf, grpc, randomBlob, toWireDigest } from '../helpers';
import { rssOf } from './load-driver';
import { sleep, startServer, type ServerProcess } from './server';

const READERS = Math.max(1, Number(process.env.KILN_FAULT_READERS ?? 400) || 400);
const BLOB_BYTES = 3 * 1024 * 1024;
/**
 * What one paused reader may cost the server: 1.5 MiB, half the blob. Measured
 * here: ~1.4 MiB per reader of a 1 MiB blob before reads were paced, growing with
 * the blob (up to 16 queued 1 MiB messages: 3 MiB and more for this one); after,
 * 0.55-0.7 MiB from dist/ (call state, a 64 KiB chunk read ahead, the message
 * waiting on flow control and its copies, garbage not yet collected), whatever the
 * blob's size. On a later, busier machine the same build measured 0.64-1.05 MiB
 * over nine runs (the garbage's share varies), and 1 MiB failed once in CI.
 */
const PER_READER_BUDGET = 1.5 * 1024 * 1024;

const identity = (b: Buffer) => b;

let server: ServerProcess;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'kiln-fault-readers-'));
  server = await startServer(dataDir, ['--cache-size', '1GiB']);
});
afterAll(async () => {
  await server?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('paused ByteStream readers', () => {
  it(`${READERS} readers of a 3 MiB blob that take nothing keep the server's RSS bounded`, async () => {
    const data = randomBlob(BLOB_BYTES);
    const digest = await digestOf(data);
    await server.clients.cas.batchUpdate({ requests: [{ digest: toWireDigest(digest), data }] });
    const resourceName = `blobs/${digest.hash}/${digest.size}`;
    // Warm up the read path (code, buffers, the blob's pages) before the baseline.
    for (let i = 0; i < 3; i++) expect((await server.clients.byteStream.read({ resourceName })).data.equals(data)).toBe(true);
    await sleep(500);
    const pid = server.child.pid!;
    const baseline = rssOf(pid);

    const request = encode(bytestream.ReadRequest, bytestream.ReadRequest.create({ resourceName }));
    const perConnection = 100; // what Bazel puts on one connection, within MAX_READS_PER_CONNECTION
    const connections = Array.from(
      { length: Math.ceil(READERS / perConnection) },
      () => new grpc.Client(server.clients.address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }),
    );
    const readers: grpc.ClientReadableStream<Buffer>[] = [];
    const failures: string[] = [];
    try {
      for (let i = 0; i < READERS; i++) {
        const call = connections[Math.floor(i / perConnection)]!.makeServerStreamRequest(
          ByteStreamService.read.path,
          identity,
          identity,
          request,
          new grpc.Metadata(),
        );
        call.on('error', (e: grpc.ServiceError) => e.code !== Status.CANCELLED && failures.push(`${Status[e.code]}: ${e.details}`));
        call.pause();
        readers.push(call);
      }
      // Every reader has its first bytes waiting: the server has done all it will until we read.
      await Promise.all(readers.map((call) => new Promise((resolve) => call.once('readable', resolve))));
      await sleep(1_000);
      const held = rssOf(pid);
      const perReader = (held - baseline) / READERS;
      process.stdout.write(
        `paused readers: ${READERS} on ${connections.length} connections; RSS ${(baseline / 2 ** 20).toFixed(0)} → ` +
          `${(held / 2 ** 20).toFixed(0)} MiB, ${(perReader / 1024).toFixed(0)} KiB per reader (budget ${PER_READER_BUDGET / 1024} KiB)\n`,
      );
      expect(failures).toEqual([]);
      expect(perReader).toBeLessThan(PER_READER_BUDGET);

      // The readers can still take the whole blob once they read again.
      const sample = readers.slice(0, 5).map(
        (call) =>
          new Promise<Buffer>((resolve, reject) => {
            const chunks: Buffer[] = [];
            call.on('data', (m: Buffer) => chunks.push(Buffer.from(bytestream.ReadResponse.decode(m).data)));
            call.on('end', () => resolve(Buffer.concat(chunks)));
            call.on('error', reject);
            call.resume();
          }),
      );
      for (const got of await Promise.all(sample)) expect(got.equals(data)).toBe(true);
    } finally {
      for (const call of readers) call.cancel();
      for (const c of connections) c.close();
    }
    expect(server.child.exitCode).toBeNull();
  });
});
