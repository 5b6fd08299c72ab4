// Resumable zstd uploads (ByteStream Write of uploads/{uuid}/compressed-blobs/zstd/...).
// The wire carries compressed bytes, so write_offset and committed_size count those;
// what reaches the store is the decompressed blob, through an ordinary upload
// session, verified against the (uncompressed) digest at commit. The decoder's
// state lives in memory, so a stream can resume only while this process runs and
// the upload has not sat idle too long; otherwise QueryWriteStatus says 0 and the
// client starts again.
import type { BlobDigest } from '../digest';
import { ZstdDecoder, ZstdFormatError } from '../compression/zstd';
import { DigestMismatchError, type BlobStore, type UploadSession } from '../store/blob-store';
import { invalidArgument } from '../grpc/status';
import type { UploadResource } from './resource-names';

/** A compressed upload nobody has written to for this long is dropped (its bytes too). */
export const COMPRESSED_UPLOAD_IDLE_MS = 10 * 60_000;

/** One resumable compressed upload. */
export class CompressedUpload {
  private readonly decoder = new ZstdDecoder();
  /** Compressed bytes accepted so far: what write_offset and committed_size count. */
  committedSize = 0;
  lastUsed = Date.now();

  constructor(
    private readonly digest: BlobDigest,
    private readonly inner: UploadSession,
  ) {}

  /** Decompresses `data` into the store; refuses output beyond the declared size at once. */
  async append(data: Uint8Array): Promise<void> {
    this.lastUsed = Date.now();
    for (const out of this.decode(data)) {
      if (this.inner.committedSize + out.byteLength > this.digest.size) {
        throw invalidArgument(
          `compressed upload of ${this.digest.hash} decompresses to more than its declared ${this.digest.size} bytes; the partial upload was discarded`,
        );
      }
      await this.inner.append(out);
    }
    this.committedSize += data.byteLength;
  }

  /** Checks the frame ended and the size and hash match, then makes the blob visible. */
  async commit(): Promise<void> {
    try {
      this.decoder.finish();
    } catch (err) {
      throw this.formatError(err);
    }
    if (this.inner.committedSize !== this.digest.size) {
      throw invalidArgument(
        `compressed upload of ${this.digest.hash} decompresses to ${this.inner.committedSize} bytes, not the declared ${this.digest.size}; nothing was stored`,
      );
    }
    try {
      await this.inner.commit();
    } catch (err) {
      if (!(err instanceof DigestMismatchError)) throw err;
      throw invalidArgument(`compressed upload of ${this.digest.hash}/${this.digest.size} rejected: ${err.message}`);
    }
  }

  abort(): Promise<void> {
    return this.inner.abort();
  }

  private *decode(data: Uint8Array): Generator<Buffer> {
    try {
      yield* this.decoder.decode(data);
    } catch (err) {
      throw this.formatError(err);
    }
  }

  private formatError(err: unknown): unknown {
    if (!(err instanceof ZstdFormatError)) return err;
    return invalidArgument(`compressed upload of ${this.digest.hash} is not a valid zstd stream: ${err.message}; nothing was stored`);
  }
}

/** The compressed uploads in progress, by upload id and digest. */
export class CompressedUploads {
  private readonly open = new Map<string, CompressedUpload>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly store: BlobStore,
    private readonly idleMs = COMPRESSED_UPLOAD_IDLE_MS,
  ) {
    this.sweeper = setInterval(() => void this.dropIdle(), Math.min(idleMs, 60_000));
    this.sweeper.unref();
  }

  /**
   * The upload to continue at `writeOffset` (compressed bytes): 0 starts afresh, any
   * other offset must be where this upload stopped. Throws INVALID_ARGUMENT otherwise.
   */
  async openAt(upload: UploadResource, writeOffset: number): Promise<CompressedUpload> {
    const key = keyOf(upload);
    const existing = this.open.get(key);
    if (existing && writeOffset === existing.committedSize) return existing;
    if (writeOffset !== 0) {
      throw invalidArgument(
        `write_offset ${writeOffset} does not match the ${existing?.committedSize ?? 0} compressed bytes committed for this upload; ` +
          'call QueryWriteStatus and resume from committed_size, or restart at 0',
        'write_offset',
      );
    }
    if (existing) await this.discard(upload);
    // The decoder's state is gone, so decompressed bytes of an earlier attempt are useless.
    let inner = await this.store.openUpload(upload.digest, innerUploadId(upload));
    if (inner.committedSize > 0) {
      await inner.abort();
      inner = await this.store.openUpload(upload.digest, innerUploadId(upload));
    }
    const fresh = new CompressedUpload(upload.digest, inner);
    this.open.set(key, fresh);
    return fresh;
  }

  /** Compressed bytes committed for this upload (0 when there is none). */
  status(upload: UploadResource): number {
    return this.open.get(keyOf(upload))?.committedSize ?? 0;
  }

  /** Forgets a finished upload. */
  forget(upload: UploadResource): void {
    this.open.delete(keyOf(upload));
  }

  /** Drops an upload and its bytes (it failed, or is restarted). */
  async discard(upload: UploadResource): Promise<void> {
    const session = this.open.get(keyOf(upload));
    this.open.delete(keyOf(upload));
    await session?.abort().catch(() => undefined);
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private async dropIdle(): Promise<void> {
    const cutoff = Date.now() - this.idleMs;
    for (const [key, session] of this.open) {
      if (session.lastUsed >= cutoff) continue;
      this.open.delete(key);
      await session.abort().catch(() => undefined);
    }
  }
}

function keyOf(upload: UploadResource): string {
  return `${upload.uploadId}/${upload.digest.fn}/${upload.digest.hash}/${upload.digest.size}`;
}

/** The store-side upload id: apart from an uncompressed upload under the same id. */
function innerUploadId(upload: UploadResource): string {
  return `zstd-${upload.uploadId}`;
}
