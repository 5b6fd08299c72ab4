import { readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { DigestMismatchError } from '../../engine/store/blob-store';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { INLINE_HASH_BYTES } from '../../engine/store/disk-uploads';
import { blob, tempDir } from './helpers';

let dir: string;
let cleanup: () => Promise<void>;
let clock: ManualClock;
const open: DiskBlobStore[] = [];

async function openStore(): Promise<DiskBlobStore> {
  const store = await DiskBlobStore.open({ dir, budgetBytes: 1 << 30, clock, staleUploadMs: 60 * 60_000 });
  open.push(store);
  return store;
}

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  clock = new ManualClock(Date.now());
});

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  await cleanup();
});

const uploadsDir = () => readdir(join(dir, 'uploads'));

describe('DiskBlobStore resumable uploads', () => {
  it('resumes a session re-opened in the same process and commits it atomically', async () => {
    const store = await openStore();
    const { data, digest } = await blob('0123456789abcdefghij');
    const first = await store.openUpload(digest, 'uuid-1');
    expect(first.committedSize).toBe(0);
    await first.append(data.subarray(0, 8));
    expect(await store.uploadStatus(digest, 'uuid-1')).toBe(8);
    expect(await store.has(digest)).toBe(false);

    const again = await store.openUpload(digest, 'uuid-1');
    expect(again.committedSize).toBe(8);
    await again.append(data.subarray(8));
    await again.commit();
    expect(await store.readAll(digest)).toEqual(data);
    expect(await store.uploadStatus(digest, 'uuid-1')).toBeUndefined();
    expect(await uploadsDir()).toEqual([]);
  });

  it('keeps distinct upload ids apart, including ids that sanitize alike', async () => {
    const store = await openStore();
    const { data, digest } = await blob('shared content');
    const a = await store.openUpload(digest, 'x/../y');
    const b = await store.openUpload(digest, 'x_.._y');
    await a.append(data.subarray(0, 3));
    expect(b.committedSize).toBe(0);
    for (const name of await uploadsDir()) expect(name).not.toContain('/');
    await b.append(data);
    await b.commit();
    await a.abort();
    expect(await store.readAll(digest)).toEqual(data);
  });

  it('an aborted upload leaves the blob absent, and a fresh upload then succeeds', async () => {
    const store = await openStore();
    const { data, digest } = await blob('abort me halfway please');
    const s = await store.openUpload(digest, 'u');
    await s.append(data.subarray(0, 10));
    await s.abort();
    await s.abort(); // harmless twice
    expect(await store.has(digest)).toBe(false);
    expect(await store.uploadStatus(digest, 'u')).toBeUndefined();
    expect(await uploadsDir()).toEqual([]);

    const retry = await store.openUpload(digest, 'u');
    expect(retry.committedSize).toBe(0);
    await retry.append(data);
    await retry.commit();
    expect(await store.readAll(digest)).toEqual(data);
  });

  it.each(['sha256', 'blake3'] as const)('a %s session dropped by a crash resumes after restart by rehashing the partial file', async (fn) => {
    const crashed = await DiskBlobStore.open({ dir, budgetBytes: 1 << 30, clock });
    const { data, digest } = await blob('survives a restart of the engine', fn);
    const s = await crashed.openUpload(digest, 'bazel-upload');
    await s.append(data.subarray(0, 12));
    // No commit, no abort, no close: the process dies here.

    const store = await openStore();
    expect(await store.has(digest)).toBe(false);
    expect(await store.uploadStatus(digest, 'bazel-upload')).toBe(12);
    const resumed = await store.openUpload(digest, 'bazel-upload');
    expect(resumed.committedSize).toBe(12);
    await resumed.append(data.subarray(12));
    await resumed.commit();
    expect(await store.readAll(digest)).toEqual(data);
  });

  it('a partial upload with corrupted bytes fails verification on commit and is dropped', async () => {
    const store = await openStore();
    const { data, digest } = await blob('the declared content');
    const s = await store.openUpload(digest, 'u');
    await s.append(Buffer.from('THE'));
    await s.append(data.subarray(3));
    await expect(s.commit()).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await store.has(digest)).toBe(false);
    expect(await uploadsDir()).toEqual([]);
    await expect(s.append(Buffer.from('x'))).rejects.toThrow(/already committed or aborted/);
  });

  // Small SHA-256 uploads are hashed inline, larger ones on the worker thread: both verify, and both resume.
  it.each([
    ['inline', INLINE_HASH_BYTES],
    ['on the worker', INLINE_HASH_BYTES + 1],
  ])('a %s-hashed SHA-256 upload of its size limit verifies, refuses a wrong byte and resumes after a restart', async (_how, size) => {
    const text = 'k'.repeat(size - 1) + 'x';
    const { data, digest } = await blob(text);
    const crashed = await DiskBlobStore.open({ dir, budgetBytes: 1 << 30, clock });
    const bad = await crashed.openUpload(digest, 'bad');
    await bad.append(Buffer.concat([data.subarray(0, size - 1), Buffer.from('y')]));
    await expect(bad.commit()).rejects.toBeInstanceOf(DigestMismatchError);
    const s = await crashed.openUpload(digest, 'good');
    await s.append(data.subarray(0, 1000));
    // The process dies here; the next one resumes from the partial file.
    const store = await openStore();
    const resumed = await store.openUpload(digest, 'good');
    expect(resumed.committedSize).toBe(1000);
    await resumed.append(data.subarray(1000));
    await resumed.commit();
    expect(await store.readAll(digest)).toEqual(data);
    expect(await uploadsDir()).toEqual([]);
  });

  it('rejects bytes beyond the declared size and a commit short of it', async () => {
    const store = await openStore();
    const { data, digest } = await blob('exactly this');
    const s = await store.openUpload(digest, 'long');
    await expect(s.append(Buffer.concat([data, data]))).rejects.toThrow(/exceeds the declared size/);
    const short = await store.openUpload(digest, 'short');
    await short.append(data.subarray(0, 4));
    await expect(short.commit()).rejects.toThrow(/received 4 bytes/);
    expect(await store.has(digest)).toBe(false);
    expect(await uploadsDir()).toEqual([]);
  });

  it('takes appends without waiting for each other: they land in order, and status counts them all', async () => {
    const store = await openStore();
    const { data, digest } = await blob(Array.from({ length: 3000 }, (_, i) => `line ${i}\n`).join(''));
    const s = await store.openUpload(digest, 'pipelined');
    const appends: Promise<void>[] = [];
    for (let at = 0; at < 2 * 1024; at += 97) appends.push(s.append(data.subarray(at, Math.min(at + 97, 2 * 1024))));
    expect(s.committedSize).toBe(2 * 1024); // accepted at once, written in the background
    expect(await store.uploadStatus(digest, 'pipelined')).toBe(2 * 1024); // reported once written
    await Promise.all(appends);

    const again = await store.openUpload(digest, 'pipelined');
    expect(again.committedSize).toBe(2 * 1024);
    const rest: Promise<void>[] = [];
    for (let at = 2 * 1024; at < data.length; at += 4096) rest.push(again.append(data.subarray(at, at + 4096)));
    await again.commit(); // waits for the appends still being written
    await Promise.all(rest);
    expect(await store.readAll(digest)).toEqual(data);
    expect(await uploadsDir()).toEqual([]);
  });

  it('an abort while appends are still being written drops them all', async () => {
    const store = await openStore();
    const { data, digest } = await blob('x'.repeat(1 << 20));
    const s = await store.openUpload(digest, 'dropped');
    const appends = [0, 1, 2, 3].map((i) => s.append(data.subarray(i * 1024, (i + 1) * 1024)));
    await s.abort();
    const outcomes = await Promise.allSettled(appends);
    expect(outcomes.some((o) => o.status === 'rejected')).toBe(true); // at least those still waiting
    expect(await store.uploadStatus(digest, 'dropped')).toBeUndefined();
    expect(await uploadsDir()).toEqual([]);
    const retry = await store.openUpload(digest, 'dropped');
    expect(retry.committedSize).toBe(0);
  });

  it('removes stale partial uploads, idle live sessions and old files alike', async () => {
    const crashed = await DiskBlobStore.open({ dir, budgetBytes: 1 << 30, clock: new ManualClock() });
    const { data, digest } = await blob('stale upload content');
    await (await crashed.openUpload(digest, 'old')).append(data.subarray(0, 5));
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60_000);
    const [oldName] = await uploadsDir();
    await utimes(join(dir, 'uploads', oldName!), twoHoursAgo, twoHoursAgo);

    const store = await openStore(); // start-up sweep
    expect(await uploadsDir()).toEqual([]);

    const live = await store.openUpload(digest, 'idle');
    await live.append(data.subarray(0, 5));
    clock.advance(30 * 60_000);
    expect(await store.sweepUploads()).toBe(0);
    expect(await store.uploadStatus(digest, 'idle')).toBe(5);
    clock.advance(31 * 60_000);
    expect(await store.sweepUploads()).toBe(1);
    expect(await store.uploadStatus(digest, 'idle')).toBeUndefined();
    expect(await uploadsDir()).toEqual([]);
  });
});
