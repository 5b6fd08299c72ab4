import { describe, expect, it } from 'vitest';
import { digestFunctionFromEnum, digestOf, DigestError, toBlobDigest, DIGEST_FUNCTIONS, isEmptyBlob } from '../engine/digest';
import { reapi } from '../engine/proto';

describe('digest', () => {
  it('hashes with sha256 and blake3, and knows each empty blob', async () => {
    expect((await digestOf(Buffer.from('abc'))).hash).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    for (const fn of ['sha256', 'blake3'] as const) {
      const empty = await digestOf(Buffer.alloc(0), fn);
      expect(empty.hash).toBe(DIGEST_FUNCTIONS[fn].emptyHash);
      expect(isEmptyBlob(empty)).toBe(true);
    }
  });

  it('infers sha256 from an unset digest function and rejects unsupported ones', () => {
    expect(digestFunctionFromEnum(reapi.DigestFunction.Value.UNKNOWN, 'a'.repeat(64)).name).toBe('sha256');
    expect(() => digestFunctionFromEnum(reapi.DigestFunction.Value.MD5)).toThrow(/MD5 is not supported/);
    expect(() => digestFunctionFromEnum(undefined, 'ab')).toThrow(DigestError);
  });

  it('rejects malformed hashes and sizes with a message naming the field', () => {
    const fn = DIGEST_FUNCTIONS.sha256;
    expect(() => toBlobDigest({ hash: 'A'.repeat(64), sizeBytes: 1 }, fn, 'action_digest')).toThrow(/action_digest: hash/);
    expect(() => toBlobDigest({ hash: 'a'.repeat(63), sizeBytes: 1 }, fn)).toThrow(/64 lower-case hex/);
    expect(() => toBlobDigest({ hash: 'a'.repeat(64), sizeBytes: -1 }, fn)).toThrow(/non-negative/);
    expect(toBlobDigest({ hash: 'a'.repeat(64), sizeBytes: 5 }, fn)).toEqual({ fn: 'sha256', hash: 'a'.repeat(64), size: 5 });
  });
});
