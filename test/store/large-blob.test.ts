// A large blob must flow through the disk store in constant memory, both ways.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { DIGEST_FUNCTIONS, type BlobDigest } from '../../engine/digest';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { tempDir } from './helpers';

const MiB = 1024 * 1024;
const BLOB_BYTES = 160 * MiB;
/** Far below the blob size: anything buffering the whole blob blows through it. */
const HEADROOM_BYTES = 48 * MiB;

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir()));
afterEach(async () => cleanup());

/** Deterministic content: chunk i is filled from its index, so it can be regenerated for hashing. */
function chunk(i: number): Buffer {
  const b = Buffer.allocUnsafe(MiB);
  b.fill(i % 251);
  b.writeUInt32LE(i, 0);
  return b;
}

// A forced collection before each sample makes the measure live memory, not lazy garbage.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function memory(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

it('streams a 160 MiB blob in and out without holding it in memory', async () => {
  const hasher = await DIGEST_FUNCTIONS.sha256.createHasher();
  for (let i = 0; i < BLOB_BYTES / MiB; i++) hasher.update(chunk(i));
  const digest: BlobDigest = { fn: 'sha256', hash: hasher.digest(), size: BLOB_BYTES };

  const store = await DiskBlobStore.open({ dir, budgetBytes: 1024 * MiB });
  try {
    const baseline = memory();
    let peak = 0;
    async function* source() {
      for (let i = 0; i < BLOB_BYTES / MiB; i++) {
        if (i % 16 === 15) peak = Math.max(peak, memory() - baseline);
        yield chunk(i);
      }
    }
    await store.write(digest, source());
    expect(peak).toBeLessThan(HEADROOM_BYTES);
    expect(store.stats().bytes).toBe(BLOB_BYTES);

    const check = await DIGEST_FUNCTIONS.sha256.createHasher();
    let bytes = 0;
    let biggestChunk = 0;
    peak = 0;
    for await (const c of await store.read(digest)) {
      if (bytes % (16 * MiB) === 0) peak = Math.max(peak, memory() - baseline);
      check.update(c as Buffer);
      bytes += (c as Buffer).byteLength;
      biggestChunk = Math.max(biggestChunk, (c as Buffer).byteLength);
    }
    expect(bytes).toBe(BLOB_BYTES);
    expect(check.digest()).toBe(digest.hash);
    expect(biggestChunk).toBeLessThanOrEqual(MiB);
    expect(peak).toBeLessThan(HEADROOM_BYTES);
  } finally {
    await store.close();
  }
}, 180_000);
