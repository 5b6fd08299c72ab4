import { describe, expect, it } from 'vitest';
import { GrpcError } from '../../engine/grpc/status';
import { blobResourceName, parseReadResourceName, parseWriteResourceName, uploadResourceName } from '../../engine/reapi/resource-names';

const H = 'a'.repeat(64);

describe('resource names', () => {
  it('parses reads from the end, with optional instance and function', () => {
    expect(parseReadResourceName(`blobs/${H}/5`)).toEqual({ instance: '', digest: { fn: 'sha256', hash: H, size: 5 } });
    expect(parseReadResourceName(`a/b/blobs/blake3/${H}/0`)).toEqual({ instance: 'a/b', digest: { fn: 'blake3', hash: H, size: 0 } });
  });

  it('parses writes, ignoring trailing metadata', () => {
    expect(parseWriteResourceName(`main/uploads/u-1/blobs/${H}/7/some/meta`)).toEqual({
      instance: 'main',
      uploadId: 'u-1',
      digest: { fn: 'sha256', hash: H, size: 7 },
    });
    expect(parseWriteResourceName(`uploads/u/blobs/blake3/${H}/7`).digest.fn).toBe('blake3');
  });

  it('parses compressed-blobs names: the compressor, then the uncompressed digest', () => {
    expect(parseReadResourceName(`team/compressed-blobs/zstd/${H}/5`)).toEqual({
      instance: 'team',
      digest: { fn: 'sha256', hash: H, size: 5 },
      compressor: 'zstd',
    });
    expect(parseReadResourceName(`compressed-blobs/zstd/blake3/${H}/5`).digest.fn).toBe('blake3');
    expect(parseWriteResourceName(`main/uploads/u-2/compressed-blobs/zstd/${H}/7/meta`)).toEqual({
      instance: 'main',
      uploadId: 'u-2',
      digest: { fn: 'sha256', hash: H, size: 7 },
      compressor: 'zstd',
    });
    const d = { fn: 'blake3' as const, hash: H, size: 3 };
    expect(parseReadResourceName(blobResourceName('i', d, 'zstd'))).toEqual({ instance: 'i', digest: d, compressor: 'zstd' });
    expect(parseWriteResourceName(uploadResourceName('', 'id', d, 'zstd')).compressor).toBe('zstd');
    expect(() => parseReadResourceName(`compressed-blobs/deflate/${H}/5`)).toThrow(/"deflate" is not supported/);
    expect(() => parseWriteResourceName(`uploads/u/compressed-blobs/${H}/5`)).toThrow(GrpcError);
  });

  it('round-trips the names it formats', () => {
    const d = { fn: 'blake3' as const, hash: H, size: 9 };
    expect(parseReadResourceName(blobResourceName('x/y', d)).digest).toEqual(d);
    expect(parseWriteResourceName(uploadResourceName('', 'id', d))).toEqual({ instance: '', uploadId: 'id', digest: d });
  });

  it.each([
    `blobs/${H}/01`,
    `blobs/${H}/1.5`,
    `blobs/sha1/${H}/5`,
    `operations/blobs/${H}/5`,
    `x/../blobs/${H}/5`,
    `uploads//blobs/${H}/5`,
    `uploads/u/blobs/${H}`,
  ])('rejects %s as INVALID_ARGUMENT', (name) => {
    const parse = name.includes('uploads') ? parseWriteResourceName : parseReadResourceName;
    expect(() => parse(name)).toThrow(GrpcError);
    try {
      parse(name);
    } catch (err) {
      expect((err as GrpcError).code).toBe(3);
    }
  });
});
