// A blob hard-linked into a running action's exec root shares its inode with the
// store, and the action may rewrite it (permissions do not stop its owner or
// root). The executor's post-run check drops such a blob, but until then the store
// would serve whatever the action left there. This decorator closes that window:
// while any action holds a link to a blob, reads of it re-hash the content first,
// serve the bytes that were hashed, and drop a blob that no longer matches its
// digest (the client sees NOT_FOUND and uploads it again). Blobs nobody holds are
// served as before, without the hashing.
import { Readable } from 'node:stream';
import { DIGEST_FUNCTIONS, digestKey, type BlobDigest } from '../digest';
import { BlobStoreDecorator } from './blob-store-decorator';
import { BlobNotFoundError, readSpan, type BlobStore, type ReadRange } from './blob-store';

export class LinkedBlobVerifier extends BlobStoreDecorator {
  private readonly held = new Map<string, number>();

  constructor(
    inner: BlobStore,
    private readonly log: (line: string) => void = () => {},
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
    const bytes = await this.verified(digest);
    return Readable.from([bytes.subarray(start, end)]);
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
    await this.inner.delete(digest);
    this.log(`kiln: blob ${digest.hash}/${digest.size} changed in place while an action held a link to it; dropped it from the CAS`);
    throw new BlobNotFoundError(digest);
  }
}
