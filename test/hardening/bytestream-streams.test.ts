// ByteStream streams under a hostile or slow client: a malformed message in the
// middle of a Write is the client's mistake (INVALID_ARGUMENT, not grpc-js's
// INTERNAL), and one connection cannot hold an unbounded number of Reads open.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteStreamService } from '../../engine/grpc/services';
import { MAX_READS_PER_CONNECTION } from '../../engine/reapi/bytestream';
import { uploadResourceName } from '../../engine/reapi/resource-names';
import { bytestream, encode } from '../../engine/proto';
import { Status, digestOf, grpc, randomBlob, startTestEngine, toWireDigest, type TestEngine } from '../helpers';

const identity = (b: Buffer) => b;

/** A client on a connection of its own (grpc-js otherwise shares one per target). */
function ownConnection(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

/** Sends `messages` (already encoded) as one Write call; resolves with its status. */
function writeRaw(client: grpc.Client, messages: Buffer[]): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(
      ByteStreamService.write.path,
      identity,
      identity,
      new grpc.Metadata(),
      { deadline: Date.now() + 20_000 },
      (err) => resolve({ code: err?.code ?? Status.OK, details: err?.details ?? '' }),
    );
    for (const m of messages) call.write(m);
    call.end();
  });
}

describe('ByteStream streams', () => {
  let t: TestEngine;
  let client: grpc.Client;
  beforeAll(async () => {
    t = await startTestEngine();
    client = ownConnection(t.clients.address);
  });
  afterAll(async () => {
    client?.close();
    await t?.stop();
  });

  it('answers a malformed WriteRequest INVALID_ARGUMENT, first or mid-stream, and stores nothing', async () => {
    const data = randomBlob(1000);
    const digest = await digestOf(data);
    const name = uploadResourceName('', 'u1', digest);
    const first = encode(bytestream.WriteRequest, bytestream.WriteRequest.create({ resourceName: name, data: data.subarray(0, 500) }));
    // resource_name claiming 127 bytes that never come: not a WriteRequest.
    const garbage = Buffer.from([0x0a, 0x7f, 0x61]);

    const midStream = await writeRaw(client, [first, garbage]);
    expect(midStream.code).toBe(Status.INVALID_ARGUMENT);
    expect(midStream.details).toMatch(/not a valid .*ByteStream\/Write message/);

    const firstBad = await writeRaw(client, [garbage]);
    expect(firstBad.code).toBe(Status.INVALID_ARGUMENT);

    const missing = await t.clients.cas.findMissing({ blobDigests: [toWireDigest(digest)] });
    expect(missing.missingBlobDigests).toHaveLength(1);
  });

  it(`refuses Read number ${MAX_READS_PER_CONNECTION + 1} on one connection with RESOURCE_EXHAUSTED, and takes more once one ends`, async () => {
    // Larger than the HTTP/2 window, so a reader that takes nothing keeps its call open.
    const data = randomBlob(512 * 1024);
    const digest = await digestOf(data);
    await t.clients.cas.batchUpdate({ requests: [{ digest: toWireDigest(digest), data }] });
    const request = encode(bytestream.ReadRequest, bytestream.ReadRequest.create({ resourceName: `blobs/${digest.hash}/${digest.size}` }));
    const conn = ownConnection(t.clients.address);
    const open = (): { call: grpc.ClientReadableStream<Buffer>; status: Promise<{ code: number; details: string }> } => {
      const call = conn.makeServerStreamRequest(ByteStreamService.read.path, identity, identity, request, new grpc.Metadata(), {
        deadline: Date.now() + 60_000,
      });
      const status = new Promise<{ code: number; details: string }>((resolve) => {
        call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
        call.on('end', () => resolve({ code: Status.OK, details: '' }));
      });
      call.pause(); // take nothing: the server must wait on us
      return { call, status };
    };
    try {
      const held = Array.from({ length: MAX_READS_PER_CONNECTION }, open);
      // Wait until every held read has started sending (its first message is waiting on us).
      await Promise.all(held.map(({ call }) => new Promise((resolve) => call.once('readable', resolve))));
      const refused = open();
      refused.call.resume();
      const answer = await refused.status;
      expect(answer.code).toBe(Status.RESOURCE_EXHAUSTED);
      expect(answer.details).toMatch(/too many concurrent ByteStream reads on this connection \(limit \d+\)/);

      // Another connection is not affected.
      const other = await t.clients.byteStream.read({ resourceName: `blobs/${digest.hash}/${digest.size}` });
      expect(other.data.equals(data)).toBe(true);

      // One held read finishes: the connection may open another.
      held[0]!.call.resume();
      held[0]!.call.on('data', () => undefined);
      expect((await held[0]!.status).code).toBe(Status.OK);
      const again = open();
      again.call.on('data', () => undefined);
      again.call.resume();
      expect((await again.status).code).toBe(Status.OK);
      for (const h of held.slice(1)) h.call.cancel();
    } finally {
      conn.close();
    }
  });
});
