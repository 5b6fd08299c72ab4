import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeReadResponseTransient } from '../../engine/grpc/read-response-encoder';
import { bytestream } from '../../engine/proto';

describe('encodeReadResponseTransient', () => {
  it('encodes what protobufjs encodes, at every varint length boundary and past the kept scratch size', () => {
    for (const size of [0, 1, 127, 128, 16_383, 16_384, 1024 * 1024, 5 * 1024 * 1024]) {
      const data = randomBytes(size);
      const ours = Buffer.from(encodeReadResponseTransient({ data }));
      const theirs = Buffer.from(bytestream.ReadResponse.encode({ data }).finish());
      expect(ours.equals(theirs), `size ${size}`).toBe(true);
      expect(Buffer.from(bytestream.ReadResponse.decode(ours).data).equals(data)).toBe(true);
    }
  });

  it('gives a later message its own bytes even when it is shorter than the one before', () => {
    const long = Buffer.from(encodeReadResponseTransient({ data: Buffer.alloc(1000, 1) }));
    const short = encodeReadResponseTransient({ data: Buffer.alloc(10, 2) });
    expect(short.byteLength).toBe(12);
    expect(Buffer.from(bytestream.ReadResponse.decode(short).data).equals(Buffer.alloc(10, 2))).toBe(true);
    expect(bytestream.ReadResponse.decode(long).data.byteLength).toBe(1000);
  });
});
