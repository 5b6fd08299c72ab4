// Partial uploads count against the cache budget: abandoned ones are reclaimed
// under pressure (before any blob is evicted), a full budget refuses more bytes
// with RESOURCE_EXHAUSTED, and the store takes uploads again once room is back.
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { digestOf } from '../../engine/digest';
import { StoreFullError } from '../../engine/store/blob-store';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { uploadResourceName } from '../../engine/reapi/resource-names';
import { Status, grpcError, randomBlob, startTestEngine } from '../helpers';

const KiB = 1024;
let dir: string;
let clock: ManualClock;
let store: DiskBlobStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-upload-budget-'));
  clock = new ManualClock();
  store = await DiskBlobStore.open({ dir, budgetBytes: 1024 * KiB, clock, reclaimIdleUploadMs: 60_000 });
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const partFiles = async () => (await readdir(join(dir, 'uploads'))).filter((n) => n.endsWith('.part'));

describe('partial uploads and the budget', () => {
  it('count against the budget: a new upload is refused RESOURCE_EXHAUSTED while active ones fill it', async () => {
    const a = randomBlob(900 * KiB);
    const sa = await store.openUpload(await digestOf(a), 'a');
    await sa.append(a.subarray(0, 800 * KiB));
    expect(store.partialUploadBytes()).toBe(800 * KiB);

    const b = randomBlob(400 * KiB);
    const sb = await store.openUpload(await digestOf(b), 'b');
    const refused = await sb.append(b).then(() => undefined, (e: unknown) => e);
    expect(refused).toBeInstanceOf(StoreFullError);
    expect((refused as Error).message).toMatch(/uploads in progress fill the .*budget/);

    // The refused upload let go of its own bytes too, so refused uploads cannot hold the space.
    expect(await store.uploadStatus(await digestOf(b), 'b')).toBeUndefined();
    expect(store.partialUploadBytes()).toBe(800 * KiB);

    // The first upload finishes; its bytes become a blob and room is back for the second, started again.
    await sa.append(a.subarray(800 * KiB));
    await sa.commit();
    expect(store.partialUploadBytes()).toBe(0);
    const again = await store.openUpload(await digestOf(b), 'b');
    await again.append(b); // evicts the older blob to make room
    await again.commit();
    expect(await store.has(await digestOf(b))).toBe(true);
    expect(store.stats().bytes + store.partialUploadBytes()).toBeLessThanOrEqual(1024 * KiB);
  });

  it('reclaims an abandoned upload under pressure before evicting blobs, and the store goes on', async () => {
    const kept = randomBlob(200 * KiB);
    await store.writeAll(await digestOf(kept), kept);
    const stale = randomBlob(700 * KiB);
    const ss = await store.openUpload(await digestOf(stale), 'stale');
    await ss.append(stale.subarray(0, 600 * KiB));
    clock.advance(61_000); // its client went away

    const fresh = randomBlob(500 * KiB);
    await store.writeAll(await digestOf(fresh), fresh);
    expect(await store.has(await digestOf(fresh))).toBe(true);
    expect(await store.has(await digestOf(kept))).toBe(true); // the abandoned upload went, not the blob
    // Its file goes in the background.
    await expect.poll(partFiles).toEqual([]);
    expect(await store.uploadStatus(await digestOf(stale), 'stale')).toBeUndefined();
  });

  it('counts partial files left by a restart, and reclaims them first', async () => {
    const stale = randomBlob(900 * KiB);
    const ss = await store.openUpload(await digestOf(stale), 'before-restart');
    await ss.append(stale.subarray(0, 700 * KiB));
    await store.close();
    store = await DiskBlobStore.open({ dir, budgetBytes: 1024 * KiB, clock, reclaimIdleUploadMs: 60_000 });
    expect(store.partialUploadBytes()).toBe(700 * KiB);
    const fresh = randomBlob(600 * KiB);
    await store.writeAll(await digestOf(fresh), fresh);
    expect(store.partialUploadBytes()).toBe(0);
    await expect.poll(partFiles).toEqual([]);
  });
});

describe('ByteStream writes refused at a bad offset', () => {
  it('leave no partial file behind', async () => {
    const t = await startTestEngine();
    try {
      for (let i = 0; i < 5; i++) {
        const data = randomBlob(10 * KiB);
        const d = await digestOf(data);
        const err = await grpcError(
          t.clients.byteStream.write([{ resourceName: uploadResourceName('', randomUUID(), d), writeOffset: 100, data: data.subarray(100) }]),
        );
        expect(err.code).toBe(Status.INVALID_ARGUMENT);
      }
      const names = await readdir(join(t.dataDir, 'cas', 'uploads'));
      expect(names.filter((n) => n.endsWith('.part'))).toEqual([]);
    } finally {
      await t.stop();
    }
  });
});
