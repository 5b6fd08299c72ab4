// The local CAS and action cache as a cache in front of the upstream's:
// a blob or action result missing here is fetched from the upstream (a blob is
// streamed to the reader while it is stored), and what is written here is
// queued for the upstream (WriteThroughQueue). An unreachable upstream reads
// as a miss: the local cache keeps serving what it has.
import { PassThrough, type Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { DIGEST_FUNCTIONS, type BlobDigest } from '../digest';
import type { ActionCacheStore } from '../store/action-cache-store';
import { ActionCacheDecorator } from '../store/action-cache-decorator';
import { BlobNotFoundError, type BlobStore, type ReadRange, type UploadSession } from '../store/blob-store';
import { BlobStoreDecorator } from '../store/blob-store-decorator';
import { reapi } from '../proto';
import { copyResultBlobs } from './result-blobs';
import { UpstreamUnreachableError, type UpstreamClient } from './upstream-client';
import type { WriteThroughQueue } from './write-through-queue';

export class ReadThroughBlobStore extends BlobStoreDecorator {

  constructor(
    inner: BlobStore,
    private readonly upstream: UpstreamClient,
    private readonly queue: WriteThroughQueue,
    private readonly log: (line: string) => void = () => {},
  ) {
    super(inner);
  }

  override async read(digest: BlobDigest, range?: ReadRange): Promise<Readable> {
    try {
      return await this.inner.read(digest, range);
    } catch (err) {
      if (!(err instanceof BlobNotFoundError)) throw err;
    }
    // Known to be down: a miss at once, rather than a wait on every read (the probe notices when it is back).
    if (!this.upstream.reachable) throw new BlobNotFoundError(digest);
    if (range?.offset || range?.limit) {
      // A partial read: fetch the whole blob first, then serve the range from here.
      await this.fetch(digest);
      return this.inner.read(digest, range);
    }
    return this.streamThrough(digest);
  }

  override async readAll(digest: BlobDigest): Promise<Buffer> {
    try {
      return await this.inner.readAll(digest);
    } catch (err) {
      if (!(err instanceof BlobNotFoundError)) throw err;
    }
    await this.fetch(digest);
    return this.inner.readAll(digest);
  }

  override async write(digest: BlobDigest, source: AsyncIterable<Uint8Array> | Readable): Promise<void> {
    await this.inner.write(digest, source);
    this.queue.add({ kind: 'blob', digest });
  }

  override async writeAll(digest: BlobDigest, data: Uint8Array): Promise<void> {
    await this.inner.writeAll(digest, data);
    this.queue.add({ kind: 'blob', digest });
  }

  override async openUpload(digest: BlobDigest, uploadId: string): Promise<UploadSession> {
    const session = await this.inner.openUpload(digest, uploadId);
    const queue = this.queue;
    return {
      get committedSize() {
        return session.committedSize;
      },
      append: (chunk) => session.append(chunk),
      commit: async () => {
        await session.commit();
        queue.add({ kind: 'blob', digest });
      },
      abort: () => session.abort(),
    };
  }

  override async close(): Promise<void> {
    await this.queue.close();
    await this.inner.close();
  }

  /** Copies the blob from the upstream into the local store; a miss there (or no upstream) is BlobNotFoundError. */
  private async fetch(digest: BlobDigest): Promise<void> {
    if (!this.upstream.reachable) throw new BlobNotFoundError(digest);
    try {
      await this.upstream.download(this.inner, digest);
    } catch (err) {
      throw asMiss(err, digest);
    }
  }

  /** Serves the upstream's bytes as they arrive and stores them on the side. */
  private async streamThrough(digest: BlobDigest): Promise<Readable> {
    const source = this.upstream.read(digest);
    // A miss upstream must reject here (NOT_FOUND for the caller), not break the stream later.
    await new Promise<void>((resolve, reject) => {
      source.once('readable', resolve);
      source.once('error', (err) => reject(asMiss(err, digest)));
    });
    const toStore = new PassThrough();
    const toReader = new PassThrough();
    source.on('error', (err) => {
      toStore.destroy(err);
      toReader.destroy(err);
    });
    // pipe() waits for both sides; a reader that goes away is unpiped and the store still gets every byte.
    source.pipe(toStore);
    source.pipe(toReader);
    this.inner.write(digest, toStore).catch((err) => this.log(`kiln: could not keep blob ${digest.hash} from the upstream: ${(err as Error).message}`));
    return toReader;
  }
}

/** The action cache in front of the upstream's: a miss here asks the upstream; results written here are queued for it. */
export class ReadThroughActionCache extends ActionCacheDecorator {
  constructor(
    inner: ActionCacheStore,
    /** The local CAS, undecorated: blobs copied here are not queued back upstream. */
    private readonly store: BlobStore,
    private readonly upstream: UpstreamClient,
    private readonly queue: WriteThroughQueue,
    private readonly log: (line: string) => void = () => {},
  ) {
    super(inner);
  }

  override async get(instance: string, actionDigest: BlobDigest): Promise<reapi.ActionResult | undefined> {
    const local = await this.inner.get(instance, actionDigest);
    if (local || !this.upstream.reachable) return local;
    let result: reapi.ActionResult | undefined;
    try {
      result = await this.upstream.getActionResult(actionDigest);
      if (!result) return undefined;
      // Its outputs come along, so the local cache can answer for it completely.
      await copyResultBlobs(this.upstream, this.store, result, DIGEST_FUNCTIONS[actionDigest.fn]);
    } catch (err) {
      if (!(err instanceof UpstreamUnreachableError)) this.log(`kiln: action ${actionDigest.hash} from the upstream is unusable: ${(err as Error).message}`);
      return undefined;
    }
    await this.inner.put(instance, actionDigest, result);
    return result;
  }

  override async put(instance: string, actionDigest: BlobDigest, result: reapi.IActionResult): Promise<void> {
    await this.inner.put(instance, actionDigest, result);
    this.queue.add({ kind: 'action', instance, digest: actionDigest });
  }
}

function asMiss(err: unknown, digest: BlobDigest): Error {
  if (err instanceof UpstreamUnreachableError) return new BlobNotFoundError(digest);
  if ((err as grpc.ServiceError).code === grpc.status.NOT_FOUND) return new BlobNotFoundError(digest);
  return err as Error;
}
