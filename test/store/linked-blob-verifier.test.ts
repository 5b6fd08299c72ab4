// LinkedBlobVerifier on its own: blobs an action holds a hard link to are checked
// before they are served, in memory when small and as they stream when large.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, type BlobDigest } from '../../engine/digest';
import { BlobNotFoundError } from '../../engine/store/blob-store';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { LinkedBlobVerifier } from '../../engine/store/linked-blob-verifier';

const root = mkdtempSync(join(tmpdir(), 'kiln-verifier-'));
let disk: DiskBlobStore;
/** Blobs over 1 KiB take the streamed path. */
let store: LinkedBlobVerifier;

beforeAll(async () => {
  disk = await DiskBlobStore.open({ dir: join(root, 'cas'), budgetBytes: 1 << 30 });
  store = new LinkedBlobVerifier(disk, () => {}, 1024);
});
afterAll(async () => {
  await store?.close();
  rmSync(root, { recursive: true, force: true });
});

async function put(data: Buffer): Promise<BlobDigest> {
  const d = await digestOf(data);
  await store.writeAll(d, data);
  return d;
}

/** Rewrites the stored file in place, same size (as an action holding a link could). */
async function corrupt(d: BlobDigest): Promise<void> {
  const path = (await store.localPath!(d))!;
  chmodSync(path, 0o644);
  writeFileSync(path, Buffer.alloc(d.size, 0x5a));
}

async function drain(r: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('LinkedBlobVerifier', () => {
  it('serves a large held blob intact, whole and in a range', async () => {
    const data = Buffer.from('a'.repeat(5000) + 'b'.repeat(5000));
    const d = await put(data);
    const release = store.holdLinked(d);
    expect((await drain(await store.read(d))).equals(data)).toBe(true);
    expect((await drain(await store.read(d, { offset: 4998, limit: 4 }))).toString()).toBe('aabb');
    release();
    expect(store.isHeld(d)).toBe(false);
  });

  it('fails a whole streamed read of a large held blob changed in place, and drops it', async () => {
    const d = await put(Buffer.from('c'.repeat(8000)));
    const release = store.holdLinked(d);
    await corrupt(d);
    await expect(drain(await store.read(d))).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await disk.has(d)).toBe(false);
    release();
  });

  it('refuses a range of a large held blob changed in place', async () => {
    const d = await put(Buffer.from('d'.repeat(8000)));
    const release = store.holdLinked(d);
    await corrupt(d);
    await expect(store.read(d, { offset: 10, limit: 10 })).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await disk.has(d)).toBe(false);
    release();
  });

  it('reads blobs nobody holds straight from the store, without hashing them', async () => {
    const d = await put(Buffer.from('e'.repeat(100)));
    await corrupt(d);
    // Served as stored: proof that reads of unheld blobs pay no hashing.
    expect((await store.readAll(d)).equals(Buffer.alloc(100, 0x5a))).toBe(true);
  });
});
