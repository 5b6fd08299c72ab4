// Resumable zstd uploads (ByteStream Write of uploads/{uuid}/compressed-blobs/zstd/...).
// The wire carries compressed bytes, so write_offset and committed_size count those;
// what reaches the store is the decompressed blob, through an ordinary upload
// session, verified against the (uncompressed) digest at commit. The decoder's
// state lives in memory; with a spool (kiln serve keeps one on disk) the compressed
// bytes are kept too, so after a restart the decoder is rebuilt by replaying them
// and the upload resumes where QueryWriteStatus says. Without one, or once the
// upload has sat idle too long, QueryWriteStatus says 0 and the client starts again.
import type { BlobDigest } from '../digest';
import type { CompressedSpool } from './compressed-spool';
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
    /** Keeps the compressed bytes under `key` for a resume after a restart. */
    private readonly spool?: { store: CompressedSpool; key: string },
  ) {}

  /** Decompresses `data` into the store; refuses output beyond the declared size at once. */
  async append(data: Uint8Array): Promise<void> {
    await this.decodeInto(data);
    // Spooled after the store took the output: a crash in between leaves the spool short, never ahead.
    await this.spool?.store.append(this.spool.key, data);
    this.committedSize += data.byteLength;
  }

  /** Rebuilds the decoder's state from the spooled bytes (after a restart), without spooling them again. */
  async replay(): Promise<void> {
    if (!this.spool) return;
    for await (const chunk of this.spool.store.read(this.spool.key)) {
      await this.decodeInto(chunk);
      this.committedSize += chunk.byteLength;
    }
  }

  /** Makes the spooled bytes durable before their committed size is acknowledged. */
  async persist(): Promise<void> {
    await this.spool?.store.sync(this.spool.key);
  }

  private async decodeInto(data: Uint8Array): Promise<void> {
    this.lastUsed = Date.now();
    for (const out of this.decode(data)) {
      if (this.inner.committedSize + out.byteLength > this.digest.size) {
        throw invalidArgument(
          `compressed upload of ${this.digest.hash} decompresses to more than its declared ${this.digest.size} bytes; the partial upload was discarded`,
        );
      }
      await this.inner.append(out);
    }
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

  async abort(): Promise<void> {
    await this.spool?.store.remove(this.spool.key);
    await this.inner.abort();
  }

  /** The spooled bytes are not needed once the blob is stored. */
  async finished(): Promise<void> {
    await this.spool?.store.remove(this.spool.key);
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
    /** Where compressed bytes are kept across restarts; without one, uploads resume only within this process. */
    private readonly spool?: CompressedSpool,
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
    if (!existing && writeOffset !== 0 && this.spool && (await this.spool.size(key)) === writeOffset) {
      return this.resume(upload);
    }
    if (writeOffset !== 0) {
      const committed = existing?.committedSize ?? (await this.spool?.size(key)) ?? 0;
      throw invalidArgument(
        `write_offset ${writeOffset} does not match the ${committed} compressed bytes committed for this upload; ` +
          'call QueryWriteStatus and resume from committed_size, or restart at 0',
        'write_offset',
      );
    }
    if (existing) await this.discard(upload);
    await this.spool?.remove(key);
    const fresh = await this.start(upload);
    this.open.set(key, fresh);
    return fresh;
  }

  /** Compressed bytes committed for this upload (0 when there is none): in memory, or spooled before a restart. */
  async status(upload: UploadResource): Promise<number> {
    return this.open.get(keyOf(upload))?.committedSize ?? (await this.spool?.size(keyOf(upload))) ?? 0;
  }

  /** A new upload session on a fresh store upload: decompressed bytes of an earlier attempt are useless without its decoder. */
  private async start(upload: UploadResource): Promise<CompressedUpload> {
    let inner = await this.store.openUpload(upload.digest, innerUploadId(upload));
    if (inner.committedSize > 0) {
      await inner.abort();
      inner = await this.store.openUpload(upload.digest, innerUploadId(upload));
    }
    return new CompressedUpload(upload.digest, inner, this.spool && { store: this.spool, key: keyOf(upload) });
  }

  /** After a restart: the spooled bytes replayed through a fresh decoder into a fresh store upload. */
  private async resume(upload: UploadResource): Promise<CompressedUpload> {
    const session = await this.start(upload);
    try {
      await session.replay();
    } catch (err) {
      await session.abort().catch(() => undefined);
      throw err;
    }
    this.open.set(keyOf(upload), session);
    return session;
  }

  /** Forgets a finished upload, and its spooled bytes. */
  async forget(upload: UploadResource): Promise<void> {
    const session = this.open.get(keyOf(upload));
    this.open.delete(keyOf(upload));
    await session?.finished();
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
    await this.spool?.sweep(this.idleMs).catch(() => undefined);
  }
}

function keyOf(upload: UploadResource): string {
  return `${upload.uploadId}/${upload.digest.fn}/${upload.digest.hash}/${upload.digest.size}`;
}

/** The store-side upload id: apart from an uncompressed upload under the same id. */
function innerUploadId(upload: UploadResource): string {
  return `zstd-${upload.uploadId}`;
}
