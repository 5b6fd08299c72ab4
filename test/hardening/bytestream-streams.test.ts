// ByteStream streams under a hostile or slow client: a malformed message in the
// middle of a Write is the client's mistake (INVALID_ARGUMENT, not grpc-js's INTERNAL).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteStreamService } from '../../engine/grpc/services';
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
});
