// A blob hard-linked into a running action's exec root shares its inode with the
// store, and the action may rewrite it (permissions do not stop its owner or
// root). The executor's post-run check drops such a blob, but until then the store
// would serve whatever the action left there. This decorator closes that window:
// while any action holds a link to a blob, reads of it re-hash the content first,
// serve the bytes that were hashed, and drop a blob that no longer matches its
// digest (the client sees NOT_FOUND and uploads it again). Blobs nobody holds are
// served as before, without the hashing.
import { Readable, Transform } from 'node:stream';
import { DIGEST_FUNCTIONS, digestKey, type BlobDigest } from '../digest';
import { BlobStoreDecorator } from './blob-store-decorator';
import { BlobNotFoundError, readSpan, type BlobStore, type ReadRange } from './blob-store';

/** Held blobs up to this size are read, hashed and served from memory; larger ones are hashed as they stream. */
export const VERIFY_IN_MEMORY_MAX_BYTES = 16 * 1024 * 1024;

export class LinkedBlobVerifier extends BlobStoreDecorator {
  private readonly held = new Map<string, number>();

  constructor(
    inner: BlobStore,
    private readonly log: (line: string) => void = () => {},
    private readonly inMemoryMaxBytes = VERIFY_IN_MEMORY_MAX_BYTES,
  ) {
    super(inner);
  }

  /** An action hard-linked `digest` into its exec root; reads verify it until the release is called. */
  override readonly holdLinked = (digest: BlobDigest): (() => void) => {
    const key = digestKey(digest);
    this.held.set(key, (this.held.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(key) ?? 1) - 1;
      if (left > 0) this.held.set(key, left);
      else this.held.delete(key);
    };
  };

  /** Whether some action holds a link to `digest` now. */
  isHeld(digest: BlobDigest): boolean {
    return this.held.has(digestKey(digest));
  }

  override async read(digest: BlobDigest, range?: ReadRange): Promise<Readable> {
    if (!this.isHeld(digest)) return this.inner.read(digest, range);
    const { start, end } = readSpan(digest, range);
    if (digest.size <= this.inMemoryMaxBytes) {
      const bytes = await this.verified(digest);
      return Readable.from([bytes.subarray(start, end)]);
    }
    // Too large to hold in memory. A whole read is hashed as it streams and fails at
    // its end on a mismatch, so the reader never gets a clean end of wrong bytes. A
    // range is served after a streamed check of the whole blob (a change in between
    // is the post-run check's to catch).
    if (start === 0 && end === digest.size) return (await this.inner.read(digest, range)).pipe(await this.checking(digest));
    for await (const _ of (await this.inner.read(digest)).pipe(await this.checking(digest))) void _;
    return this.inner.read(digest, range);
  }

  /** A pass-through that hashes what flows and, at the end, fails (and drops the blob) on a mismatch. */
  private async checking(digest: BlobDigest): Promise<Transform> {
    const hasher = await DIGEST_FUNCTIONS[digest.fn].createHasher();
    let size = 0;
    return new Transform({
      transform(chunk: Buffer, _enc, done) {
        hasher.update(chunk);
        size += chunk.byteLength;
        done(null, chunk);
      },
      flush: (done) => {
        if (size === digest.size && hasher.digest() === digest.hash) return done();
        void this.drop(digest).then(() => done(new BlobNotFoundError(digest)), done);
      },
    });
  }

  private async drop(digest: BlobDigest): Promise<void> {
    await this.inner.delete(digest);
    this.log(`kiln: blob ${digest.hash}/${digest.size} changed in place while an action held a link to it; dropped it from the CAS`);
  }

  override async readAll(digest: BlobDigest): Promise<Buffer> {
    if (!this.isHeld(digest)) return this.inner.readAll(digest);
    return this.verified(digest);
  }

  /** The whole blob, checked against its digest; a blob that fails is dropped. */
  private async verified(digest: BlobDigest): Promise<Buffer> {
    const bytes = await this.inner.readAll(digest);
    const hasher = await DIGEST_FUNCTIONS[digest.fn].createHasher();
    hasher.update(bytes);
    if (bytes.byteLength === digest.size && hasher.digest() === digest.hash) return bytes;
    await this.drop(digest);
    throw new BlobNotFoundError(digest);
  }
}
