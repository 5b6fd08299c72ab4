// Streaming zstd for compressed-blobs transfers, over zstd-napi's low-level
// contexts: each input chunk is turned into output chunks synchronously, so the
// caller awaits its own sink between them and memory stays one window plus one
// output buffer, however large the blob. (Node 20's zlib has no zstd; zstd-napi is
// an N-API module, ABI-stable across Node and Electron, that builds offline.)
import * as zstd from 'zstd-napi/binding';

/** Level for blobs we compress on the way out: level 1 costs about half the CPU of 3 for ~8% less ratio on text. */
export const READ_COMPRESSION_LEVEL = 1;

/**
 * Largest window a client's frame may ask for (2^27 = 128 MiB, zstd's own default
 * limit): bounds the memory one upload can make us hold, whatever the blob's size.
 */
const MAX_WINDOW_LOG = 27;

/** The stream is not valid zstd, or ended inside a frame. */
export class ZstdFormatError extends Error {}

/** Decompresses one stream of concatenated zstd frames, chunk by chunk. */
export class ZstdDecoder {
  private readonly dctx = new zstd.DCtx();
  private readonly outSize = zstd.dStreamOutSize();
  /** ZSTD_decompressStream's last hint: 0 exactly when the last frame ended and was flushed. */
  private hint = 1;
  private sawInput = false;

  constructor() {
    this.dctx.setParameter(zstd.DParameter.windowLogMax, MAX_WINDOW_LOG);
  }

  /** The uncompressed bytes `chunk` completes; each yielded buffer is the caller's to keep. */
  *decode(chunk: Uint8Array): Generator<Buffer> {
    let src = chunk;
    if (src.byteLength > 0) this.sawInput = true;
    while (src.byteLength > 0) {
      const [hint, produced, consumed] = this.step(src);
      this.hint = hint;
      src = src.subarray(consumed);
      if (produced > 0) yield this.take(produced);
    }
    // Output the decoder still holds although all input is consumed.
    for (;;) {
      if (this.hint === 0) return;
      const [hint, produced] = this.step(new Uint8Array(0));
      this.hint = hint;
      if (produced === 0) return;
      yield this.take(produced);
    }
  }

  /** Throws ZstdFormatError unless the input ended exactly at the end of a frame. */
  finish(): void {
    if (!this.sawInput) throw new ZstdFormatError('the compressed stream is empty (not even one zstd frame)');
    if (this.hint !== 0) throw new ZstdFormatError('the compressed stream ends in the middle of a zstd frame');
  }

  private out = Buffer.allocUnsafe(0);

  private step(src: Uint8Array): [number, number, number] {
    this.out = Buffer.allocUnsafe(this.outSize);
    try {
      return this.dctx.decompressStream(this.out, src);
    } catch (err) {
      throw new ZstdFormatError(`not valid zstd data: ${(err as Error).message}`);
    }
  }

  private take(produced: number): Buffer {
    return this.out.subarray(0, produced);
  }
}

/** Compresses one stream into a single zstd frame, chunk by chunk. */
export class ZstdEncoder {
  private readonly cctx = new zstd.CCtx();
  private readonly outSize = zstd.cStreamOutSize();

  constructor(level = READ_COMPRESSION_LEVEL) {
    this.cctx.setParameter(zstd.CParameter.compressionLevel, level);
    this.cctx.setParameter(zstd.CParameter.checksumFlag, 1);
  }

  /** Compressed bytes for `chunk`; the frame stays open. */
  *encode(chunk: Uint8Array): Generator<Buffer> {
    let src = chunk;
    while (src.byteLength > 0) {
      const out = Buffer.allocUnsafe(this.outSize);
      const [, produced, consumed] = this.cctx.compressStream2(out, src, zstd.EndDirective.continue);
      src = src.subarray(consumed);
      if (produced > 0) yield out.subarray(0, produced);
    }
  }

  /** The rest of the frame (its end mark and checksum). */
  *end(): Generator<Buffer> {
    for (;;) {
      const out = Buffer.allocUnsafe(this.outSize);
      const [remaining, produced] = this.cctx.compressStream2(out, new Uint8Array(0), zstd.EndDirective.end);
      if (produced > 0) yield out.subarray(0, produced);
      if (remaining === 0) return;
    }
  }
}

/** Compresses a whole source stream (a store read) into zstd chunks. */
export async function* compressStream(source: AsyncIterable<Uint8Array>, level = READ_COMPRESSION_LEVEL): AsyncGenerator<Buffer> {
  const encoder = new ZstdEncoder(level);
  for await (const chunk of source) yield* encoder.encode(chunk);
  yield* encoder.end();
}

/**
 * Decompresses a zstd stream that must come to exactly `expectedSize` bytes: more is
 * refused as soon as it shows, less (or a cut frame) at the end. Errors are ZstdFormatError.
 */
export async function* decompressExact(source: AsyncIterable<Uint8Array>, expectedSize: number): AsyncGenerator<Buffer> {
  const decoder = new ZstdDecoder();
  let total = 0;
  for await (const chunk of source) {
    for (const out of decoder.decode(chunk)) {
      total += out.byteLength;
      if (total > expectedSize) throw new ZstdFormatError(`decompresses to more than the declared ${expectedSize} bytes`);
      yield out;
    }
  }
  decoder.finish();
  if (total !== expectedSize) throw new ZstdFormatError(`decompresses to ${total} bytes, not the declared ${expectedSize}`);
}

/** One whole buffer compressed (batch reads: small blobs only). */
export function compressBuffer(data: Uint8Array, level = READ_COMPRESSION_LEVEL): Buffer {
  const encoder = new ZstdEncoder(level);
  return Buffer.concat([...encoder.encode(data), ...encoder.end()]);
}
