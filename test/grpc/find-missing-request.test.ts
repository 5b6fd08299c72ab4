import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeFindMissingBlobsRequest, encodeFindMissingBlobsResponse } from '../../engine/grpc/find-missing-request';
import { reapi } from '../../engine/proto';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
/** Sizes at each varint length boundary, up to the largest safe integer. */
const SIZES = [0, 1, 127, 128, 16_383, 16_384, 2 ** 21, 2 ** 31, 2 ** 35 + 3, Number.MAX_SAFE_INTEGER];
const DIGESTS = SIZES.map((sizeBytes, i) => ({ hash: sha(`blob ${i}`), sizeBytes }));

/** protobufjs's reading of the bytes, as plain fields. */
function reference(bytes: Uint8Array) {
  const m = reapi.FindMissingBlobsRequest.decode(bytes);
  return { instanceName: m.instanceName, digestFunction: m.digestFunction, blobDigests: m.blobDigests.map((d) => ({ hash: d.hash, sizeBytes: Number(d.sizeBytes) })) };
}

function ours(bytes: Uint8Array) {
  const m = decodeFindMissingBlobsRequest(Buffer.from(bytes));
  return { instanceName: m.instanceName, digestFunction: m.digestFunction, blobDigests: m.blobDigests.map((d) => ({ hash: d.hash, sizeBytes: Number(d.sizeBytes) })) };
}

const encodeRequest = (m: reapi.IFindMissingBlobsRequest) => reapi.FindMissingBlobsRequest.encode(m).finish();

describe('decodeFindMissingBlobsRequest', () => {
  it('reads what protobufjs reads: instance name, digest function, every digest and size', () => {
    for (const m of [
      { blobDigests: DIGESTS },
      { instanceName: 'main/ünïcode', digestFunction: reapi.DigestFunction.Value.BLAKE3, blobDigests: DIGESTS },
      { blobDigests: [{ hash: '', sizeBytes: 0 }, { hash: 'ABC', sizeBytes: 5 }, { hash: `${'a'.repeat(63)}é`, sizeBytes: 1 }] },
      {},
    ]) {
      const bytes = encodeRequest(m);
      expect(ours(bytes)).toEqual(reference(bytes));
    }
  });

  it('leaves unusual shapes to protobufjs: unknown fields, negative sizes, fields out of order or repeated', () => {
    const digest = Buffer.from(reapi.Digest.encode({ hash: sha('x'), sizeBytes: 9 }).finish());
    const cases = [
      // A negative int64 size is ten varint bytes; protobufjs reads -1, which the handler then refuses.
      encodeRequest({ blobDigests: [{ hash: sha('neg'), sizeBytes: -1 }] }),
      // An unknown field inside a Digest (field 3, varint 1).
      Buffer.concat([Buffer.from([0x12, digest.length + 2]), digest, Buffer.from([0x18, 0x01])]),
      // An unknown top-level field (field 9, length 0) among the digests.
      Buffer.concat([Buffer.from(encodeRequest({ blobDigests: [DIGESTS[1]!] })), Buffer.from([0x4a, 0x00]), Buffer.from(encodeRequest({ blobDigests: [DIGESTS[2]!] }))]),
      // size before hash, and the instance name given twice (the last one wins).
      Buffer.concat([Buffer.from([0x0a, 0x01, 0x61, 0x12, 0x44, 0x10, 0x07, 0x0a, 0x40]), Buffer.from(sha('y')), Buffer.from([0x0a, 0x01, 0x62])]),
    ];
    for (const bytes of cases) expect(ours(bytes)).toEqual(reference(bytes));
    expect(ours(cases[0]!).blobDigests[0]!.sizeBytes).toBe(-1);
    expect(ours(cases[3]!).instanceName).toBe('b');
  });

  it('refuses truncated bytes as protobufjs does', () => {
    const bytes = encodeRequest({ blobDigests: DIGESTS });
    for (const cut of [1, 5, bytes.length - 1]) {
      const part = bytes.subarray(0, cut);
      expect(() => reapi.FindMissingBlobsRequest.decode(part)).toThrow();
      expect(() => decodeFindMissingBlobsRequest(Buffer.from(part))).toThrow();
    }
  });
});

describe('encodeFindMissingBlobsResponse', () => {
  const encodeResponse = (digests: reapi.Digest.$Properties[]) =>
    Buffer.from(reapi.FindMissingBlobsResponse.encode({ missingBlobDigests: digests }).finish());
  const decodeResponse = (bytes: Uint8Array) =>
    reapi.FindMissingBlobsResponse.decode(bytes).missingBlobDigests.map((d) => ({ hash: d.hash, sizeBytes: Number(d.sizeBytes) }));

  it('answers with the bytes protobufjs would write for the missing digests the fast reader read', () => {
    const request = decodeFindMissingBlobsRequest(Buffer.from(encodeRequest({ instanceName: 'main', blobDigests: DIGESTS })));
    for (const missing of [request.blobDigests, request.blobDigests.filter((_, i) => i % 3 === 1), request.blobDigests.slice(-1), []]) {
      const bytes = encodeFindMissingBlobsResponse(reapi.FindMissingBlobsResponse.create({ missingBlobDigests: missing }));
      expect(bytes.equals(encodeResponse(missing))).toBe(true);
      expect(decodeResponse(bytes)).toEqual(missing.map((d) => ({ hash: d.hash, sizeBytes: Number(d.sizeBytes) })));
    }
  });

  it('answers a digest sent in an unusual field order with the same digest', () => {
    // One Digest with its size before its hash: still the usual shape, copied as sent.
    const hash = sha('order');
    const digest = Buffer.concat([Buffer.from([0x10, 0x07, 0x0a, 0x40]), Buffer.from(hash)]);
    const request = decodeFindMissingBlobsRequest(Buffer.concat([Buffer.from([0x12, digest.length]), digest]));
    const bytes = encodeFindMissingBlobsResponse(reapi.FindMissingBlobsResponse.create({ missingBlobDigests: request.blobDigests }));
    expect(decodeResponse(bytes)).toEqual([{ hash, sizeBytes: 7 }]);
  });

  it('lets protobufjs encode digests that did not come from the fast reader', () => {
    const request = decodeFindMissingBlobsRequest(Buffer.from(encodeRequest({ blobDigests: DIGESTS.slice(0, 2) })));
    const made = { hash: sha('made here'), sizeBytes: 12 };
    const missing = [request.blobDigests[0]!, made];
    const bytes = encodeFindMissingBlobsResponse(reapi.FindMissingBlobsResponse.create({ missingBlobDigests: missing }));
    expect(bytes.equals(encodeResponse(missing))).toBe(true);
  });
});
