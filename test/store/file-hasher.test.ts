import { createHash, randomBytes } from 'node:crypto';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { FileHashWorker } from '../../engine/store/file-hasher';
import { tempDir } from './helpers';

let dir: string;
let cleanup: () => Promise<void>;
let hasher: FileHashWorker;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('kiln-hash-'));
  hasher = new FileHashWorker();
});
afterEach(async () => {
  await hasher.close();
  await cleanup();
});

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

it('hashes a file as it grows, exactly up to the size asked for', async () => {
  const path = join(dir, 'growing');
  const data = randomBytes(3 * 1024 * 1024 + 17);
  await writeFile(path, data.subarray(0, 1000));
  const job = hasher.open(path);
  job.advance(1000);
  await appendFile(path, data.subarray(1000));
  job.advance(2 * 1024 * 1024);
  expect(await job.digest(data.length)).toBe(sha256(data));

  const prefix = hasher.open(path); // bytes past the size asked for are not hashed
  expect(await prefix.digest(12345)).toBe(sha256(data.subarray(0, 12345)));
});

it('fails rather than guess when the file holds fewer bytes than were advanced, or is missing', async () => {
  const path = join(dir, 'short');
  await writeFile(path, Buffer.from('only this'));
  await expect(hasher.open(path).digest(100)).rejects.toThrow(/shorter/);
  await expect(hasher.open(join(dir, 'absent')).digest(0)).rejects.toThrow(/ENOENT/);
});

it('a job open when the worker stops fails, and the next one starts a fresh worker', async () => {
  const path = join(dir, 'f');
  await writeFile(path, Buffer.from('abc'));
  const job = hasher.open(path);
  await hasher.close();
  await expect(job.digest(3)).rejects.toThrow(/stopped/);
  expect(await hasher.open(path).digest(3)).toBe(sha256(Buffer.from('abc')));
});

it('hashes every byte when the file grows in steps smaller than the worker is told about', async () => {
  // Uploads arrive in 64 KiB messages; the worker hears of them a MiB at a time, and of the rest at digest().
  const path = join(dir, 'small-steps');
  const data = randomBytes(2 * 1024 * 1024 + 4321);
  await writeFile(path, Buffer.alloc(0));
  const job = hasher.open(path);
  for (let at = 0; at < data.length; at += 64 * 1024) {
    await appendFile(path, data.subarray(at, at + 64 * 1024));
    job.advance(Math.min(data.length, at + 64 * 1024));
  }
  expect(await job.digest(data.length)).toBe(sha256(data));
});
