// zstd-compressed blobs over ByteStream (compressed-blobs/zstd/...) and the batch
// calls, against a real engine. The client side compresses with zstd-napi's own
// high-level API, not the engine's codec, so the two check each other.
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecompressStream, compress, decompress } from 'zstd-napi';
import type { BlobDigest } from '../../engine/digest';
import { reapi } from '../../engine/proto';
import { blobResourceName, uploadResourceName } from '../../engine/reapi/resource-names';
import { Status, digestOf, grpcError, randomBlob, startTestEngine, toWireDigest, uploadBlob, type TestEngine } from '../helpers';

const MiB = 1024 * 1024;
const ZSTD = reapi.Compressor.Value.ZSTD;
let t: TestEngine;

beforeAll(async () => {
  t = await startTestEngine();
});
afterAll(async () => {
  await t?.stop();
});

/** Build-log-like text: what compression is for. */
function textBlob(size: number, seed = 0): Buffer {
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const line = `src/module_${(i * 7 + seed) % 211}/file_${i % 97}.cc:${i}: warning: unused variable 'tmp_${(i * 13) % 89}' [-Wunused]\n`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

async function isStored(d: BlobDigest): Promise<boolean> {
  const res = await t.clients.cas.findMissing({ blobDigests: [toWireDigest(d)] });
  return res.missingBlobDigests.length === 0;
}

/** Write requests carrying `wire` from `from`, in `size` pieces; the first names the resource. */
function writes(name: string, wire: Buffer, from = 0, to = wire.length, finish = true, size = 64 * 1024) {
  const out = [];
  for (let at = from; at < to; at += size) {
    const end = Math.min(to, at + size);
    out.push({ resourceName: at === from ? name : '', writeOffset: at, data: wire.subarray(at, end), finishWrite: finish && end === to });
  }
  return out;
}

describe('Capabilities', () => {
  it('advertises zstd for ByteStream and for batch uploads', async () => {
    const caps = await t.clients.capabilities.get();
    expect(caps.cacheCapabilities?.supportedCompressors).toContain(ZSTD);
    expect(caps.cacheCapabilities?.supportedBatchUpdateCompressors).toContain(ZSTD);
  });
});

describe('compressed ByteStream', () => {
  it('round-trips: a compressed upload is stored uncompressed and reads back in both forms', async () => {
    const data = textBlob(3 * MiB + 17);
    const d = await digestOf(data);
    const wire = compress(data);
    expect(wire.length).toBeLessThan(data.length / 3);
    const name = uploadResourceName('', randomUUID(), d, 'zstd');
    const res = await t.clients.byteStream.write(writes(name, wire));
    expect(Number(res.committedSize)).toBe(wire.length);

    expect((await t.clients.byteStream.read({ resourceName: blobResourceName('', d) })).data.equals(data)).toBe(true);
    const { data: packed, chunkSizes } = await t.clients.byteStream.read({ resourceName: blobResourceName('', d, 'zstd') });
    expect(packed.length).toBeLessThan(data.length / 3);
    expect(Math.max(...chunkSizes)).toBeLessThanOrEqual(MiB);
    expect(decompress(packed).equals(data)).toBe(true);
  });

  it('serves a blob uploaded uncompressed in compressed form, with read_offset and read_limit in compressed bytes', async () => {
    const data = textBlob(2 * MiB, 5);
    const d = await uploadBlob(t.clients, data);
    const name = blobResourceName('', d, 'zstd');
    const whole = (await t.clients.byteStream.read({ resourceName: name })).data;
    const cut = Math.floor(whole.length / 3);
    const head = (await t.clients.byteStream.read({ resourceName: name, readLimit: cut })).data;
    const tail = (await t.clients.byteStream.read({ resourceName: name, readOffset: cut })).data;
    expect(Buffer.concat([head, tail]).equals(whole)).toBe(true);
    expect(decompress(Buffer.concat([head, tail])).equals(data)).toBe(true);
    const past = await grpcError(t.clients.byteStream.read({ resourceName: name, readOffset: whole.length + 1 }));
    expect(past.code).toBe(Status.OUT_OF_RANGE);
  });

  it('resumes a compressed upload at the compressed offset QueryWriteStatus reports', async () => {
    const data = textBlob(MiB, 9);
    const d = await digestOf(data);
    const wire = compress(data);
    const name = uploadResourceName('', randomUUID(), d, 'zstd');
    const half = Math.floor(wire.length / 2);
    const first = await t.clients.byteStream.write(writes(name, wire, 0, half, false));
    expect(Number(first.committedSize)).toBe(half);
    const status = await t.clients.byteStream.queryWriteStatus({ resourceName: name });
    expect(Number(status.committedSize)).toBe(half);
    expect(status.complete).toBe(false);

    const wrong = await grpcError(t.clients.byteStream.write(writes(name, wire, half + 1)));
    expect(wrong.code).toBe(Status.INVALID_ARGUMENT);
    expect(wrong.details).toMatch(/write_offset/);
    // A refused resume leaves the upload where it was.
    expect(Number((await t.clients.byteStream.queryWriteStatus({ resourceName: name })).committedSize)).toBe(half);

    const done = await t.clients.byteStream.write(writes(name, wire, half));
    expect(Number(done.committedSize)).toBe(wire.length);
    expect((await t.clients.byteStream.read({ resourceName: blobResourceName('', d) })).data.equals(data)).toBe(true);
    const after = await t.clients.byteStream.queryWriteStatus({ resourceName: name });
    expect(after.complete).toBe(true);
  });

  it('ends a compressed upload of a stored blob early with committed_size -1', async () => {
    const data = textBlob(100_000, 3);
    const d = await uploadBlob(t.clients, data);
    const res = await t.clients.byteStream.write(writes(uploadResourceName('', randomUUID(), d, 'zstd'), compress(data)));
    expect(Number(res.committedSize)).toBe(-1);
  });

  it('refuses corrupt, truncated, short and long streams with INVALID_ARGUMENT and stores nothing', async () => {
    const data = textBlob(600_000, 11);
    const d = await digestOf(data);
    const wire = compress(data);
    const corrupt = Buffer.from(wire);
    for (let i = 100; i < 140; i++) corrupt[i] ^= 0x5a;
    const truncated = wire.subarray(0, wire.length - 10);
    const shorter = compress(data.subarray(1));
    const longer = compress(Buffer.concat([data, Buffer.from('more')]));
    const notZstd = Buffer.from('this is not zstd at all');
    for (const [label, bytes, message] of [
      ['corrupt', corrupt, /not a valid zstd stream|decompresses to|hashes to/],
      ['truncated', truncated, /middle of a zstd frame|not a valid zstd/],
      ['too short', shorter, /decompresses to 599999 bytes/],
      ['too long', longer, /more than its declared 600000 bytes/],
      ['not zstd', notZstd, /not a valid zstd stream/],
    ] as const) {
      const err = await grpcError(t.clients.byteStream.write(writes(uploadResourceName('', randomUUID(), d, 'zstd'), bytes)));
      expect(err.code, label).toBe(Status.INVALID_ARGUMENT);
      expect(err.details, label).toMatch(message);
      expect(await isStored(d), label).toBe(false);
    }
    // The same bytes, whole, still go in.
    await t.clients.byteStream.write(writes(uploadResourceName('', randomUUID(), d, 'zstd'), wire));
    expect(await isStored(d)).toBe(true);
  });

  it('names an unsupported compressor precisely', async () => {
    const d = await digestOf(Buffer.from('x'));
    const read = await grpcError(t.clients.byteStream.read({ resourceName: `compressed-blobs/brotli/${d.hash}/1` }));
    expect(read.code).toBe(Status.INVALID_ARGUMENT);
    expect(read.details).toMatch(/compressor "brotli" is not supported/);
    const write = await grpcError(
      t.clients.byteStream.write([{ resourceName: `uploads/${randomUUID()}/compressed-blobs/lz4/${d.hash}/1`, data: Buffer.from('x'), finishWrite: true }]),
    );
    expect(write.details).toMatch(/compressor "lz4" is not a compressor/);
  });

  it('streams a 192 MiB compressed upload and download with bounded memory', async () => {
    const size = 192 * MiB;
    const piece = textBlob(4 * MiB, 21);
    // The blob is `piece` repeated; its digest is computed without holding it whole.
    const hash = createHash('sha256');
    for (let at = 0; at < size; at += piece.length) hash.update(piece);
    const d: BlobDigest = { fn: 'sha256', hash: hash.digest('hex'), size };
    const packedPiece = compress(piece); // frames concatenate: the stream is this frame repeated
    const name = uploadResourceName('', randomUUID(), d, 'zstd');

    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const { call, response } = t.clients.byteStream.openWrite();
      let offset = 0;
      for (let at = 0; at < size; at += piece.length) {
        const last = at + piece.length >= size;
        const ok = call.write({ resourceName: at === 0 ? name : '', writeOffset: offset, data: packedPiece, finishWrite: last });
        offset += packedPiece.length;
        if (!ok) await new Promise((r) => call.once('drain', r));
      }
      call.end();
      expect(Number((await response).committedSize)).toBe(offset);

      // Read it back compressed and check the hash of what it decompresses to.
      const back = createHash('sha256');
      const inflate = new DecompressStream();
      inflate.on('data', (chunk: Buffer) => back.update(chunk));
      const read = t.clients.byteStream.openRead({ resourceName: blobResourceName('', d, 'zstd') });
      for await (const msg of read) {
        if (!inflate.write(Buffer.from(msg.data))) await new Promise((r) => inflate.once('drain', r));
      }
      await new Promise((r) => inflate.end(r));
      expect(back.digest('hex')).toBe(d.hash);
    } finally {
      clearInterval(sample);
    }
    // The process (test and engine both) grew by far less than the blob.
    expect(peak - before, `RSS grew ${((peak - before) / MiB).toFixed(0)} MiB`).toBeLessThan(96 * MiB);
    if (process.env.KILN_TEST_VERBOSE) console.log(`192 MiB compressed round trip: RSS grew ${((peak - before) / MiB).toFixed(1)} MiB`);
  }, 120_000);
});

describe('compressed batches', () => {
  it('stores zstd batch uploads and answers per blob; refuses a corrupt one alone', async () => {
    const good = textBlob(200_000, 31);
    const bad = textBlob(150_000, 32);
    const dGood = await digestOf(good);
    const dBad = await digestOf(bad);
    const corrupt = compress(bad);
    corrupt[corrupt.length - 1] ^= 0xff; // the frame checksum
    const res = await t.clients.cas.batchUpdate({
      requests: [
        { digest: toWireDigest(dGood), data: compress(good), compressor: ZSTD },
        { digest: toWireDigest(dBad), data: corrupt, compressor: ZSTD },
      ],
    });
    expect(res.responses.map((r) => r.status?.code ?? 0)).toEqual([Status.OK, Status.INVALID_ARGUMENT]);
    expect(await isStored(dGood)).toBe(true);
    expect(await isStored(dBad)).toBe(false);
  });

  it('answers batch reads compressed only when the client accepts zstd', async () => {
    const data = textBlob(300_000, 41);
    const d = await uploadBlob(t.clients, data);
    const plain = await t.clients.cas.batchRead({ digests: [toWireDigest(d)] });
    expect(plain.responses[0]!.compressor ?? 0).toBe(reapi.Compressor.Value.IDENTITY);
    expect(Buffer.from(plain.responses[0]!.data).equals(data)).toBe(true);
    const packed = await t.clients.cas.batchRead({ digests: [toWireDigest(d)], acceptableCompressors: [ZSTD] });
    expect(packed.responses[0]!.compressor).toBe(ZSTD);
    expect(packed.responses[0]!.data.length).toBeLessThan(data.length / 3);
    expect(decompress(Buffer.from(packed.responses[0]!.data)).equals(data)).toBe(true);
  });

  it('keeps incompressible blobs uncompressed in batch reads', async () => {
    const data = randomBlob(50_000);
    const d = await uploadBlob(t.clients, data);
    const res = await t.clients.cas.batchRead({ digests: [toWireDigest(d)], acceptableCompressors: [ZSTD] });
    expect(res.responses[0]!.compressor ?? 0).toBe(reapi.Compressor.Value.IDENTITY);
    expect(Buffer.from(res.responses[0]!.data).equals(data)).toBe(true);
  });
});
