import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import type { BlobDigest } from '../../engine/digest';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { reapi } from '../../engine/proto';
import {
  DiskActionCacheStore,
  MemoryActionCacheStore,
  instanceFolder,
  type ActionCacheStore,
} from '../../engine/store/action-cache-store';
import { blob, tempDir } from './helpers';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir('kiln-ac-')));
afterEach(async () => cleanup());

function result(exitCode: number): reapi.ActionResult {
  return reapi.ActionResult.create({
    exitCode,
    stdoutRaw: Buffer.from(`exit ${exitCode}`),
    outputFiles: [{ path: 'out/a.o', digest: { hash: 'a'.repeat(64), sizeBytes: 3 }, isExecutable: true }],
  });
}

const variants: [string, () => Promise<ActionCacheStore>][] = [
  ['memory', async () => new MemoryActionCacheStore(2)],
  ['disk', () => DiskActionCacheStore.open({ dir, maxEntries: 2 })],
];

describe.each(variants)('%s action cache', (_name, make) => {
  it('stores results per instance: names that look alike never share entries', async () => {
    const ac = await make();
    const { digest } = await blob('action');
    await ac.put('a/b', digest, result(1));
    await ac.put('a_b', digest, result(2));
    expect((await ac.get('a/b', digest))?.exitCode).toBe(1);
    expect((await ac.get('a_b', digest))?.exitCode).toBe(2);
    expect(await ac.get('', digest)).toBeUndefined();
    expect(await ac.get('a', digest)).toBeUndefined();
    const got = (await ac.get('a/b', digest))!;
    expect(got.outputFiles[0]?.path).toBe('out/a.o');
    expect(Buffer.from(got.stdoutRaw).toString()).toBe('exit 1');
    await ac.close();
  });

  it('hands out copies: mutating a result never changes the cache', async () => {
    const ac = await make();
    const { digest } = await blob('action');
    const r = result(0);
    await ac.put('', digest, r);
    r.exitCode = 9;
    (await ac.get('', digest))!.exitCode = 7;
    expect((await ac.get('', digest))?.exitCode).toBe(0);
    await ac.close();
  });

  it('hands out the stored bytes beside the result: they decode to it, from disk and from memory, and mutating the result leaves them be', async () => {
    const ac = await make();
    const { digest } = await blob('action');
    await ac.put('', digest, result(3));
    for (let i = 0; i < 2; i++) {
      const stored = (await ac.getWithBytes!('', digest))!;
      expect(reapi.ActionResult.toObject(reapi.ActionResult.decode(stored.bytes))).toEqual(reapi.ActionResult.toObject(stored.result));
      expect(stored.result.exitCode).toBe(3);
      stored.result.exitCode = 8;
      expect(reapi.ActionResult.decode(stored.bytes).exitCode).toBe(3);
    }
    expect(await ac.getWithBytes!('other', digest)).toBeUndefined();
    await ac.close();
  });

  it('evicts the least recently used entry beyond maxEntries, and deletes', async () => {
    const ac = await make();
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(async (s) => (await blob(s)).digest));
    await ac.put('i', a!, result(1));
    await ac.put('i', b!, result(2));
    await ac.get('i', a!); // b is now least recently used
    await ac.put('i', c!, result(3));
    expect(await ac.get('i', b!)).toBeUndefined();
    expect((await ac.get('i', a!))?.exitCode).toBe(1);
    expect(ac.size()).toBe(2);
    expect(await ac.delete('i', a!)).toBe(true);
    expect(await ac.delete('i', a!)).toBe(false);
    expect(await ac.get('i', a!)).toBeUndefined();
    await ac.close();
  });
});

describe('DiskActionCacheStore', () => {
  it('keeps entries and their recency across a reopen', async () => {
    let ac = await DiskActionCacheStore.open({ dir, maxEntries: 2 });
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(async (s) => (await blob(s)).digest));
    await ac.put('team/linux', a!, result(1));
    await ac.put('', b!, result(2));
    await ac.get('team/linux', a!); // b least recently used
    await ac.close();

    ac = await DiskActionCacheStore.open({ dir, maxEntries: 2 });
    expect(ac.size()).toBe(2);
    expect((await ac.get('', b!))?.exitCode).toBe(2); // now a is least recently used
    await ac.put('team/linux', c!, result(3));
    expect(await ac.get('team/linux', a!)).toBeUndefined();
    expect((await ac.get('', b!))?.exitCode).toBe(2);
    await ac.close();
  });

  it('serves repeated hits from memory yet forgets them on delete, eviction and replacement', async () => {
    const ac = await DiskActionCacheStore.open({ dir, maxEntries: 2 });
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(async (s) => (await blob(s)).digest));
    await ac.put('i', a!, result(1));
    await ac.writeOutFiles(); // entries' files follow their acknowledgement shortly
    const path = join(dir, 'instances', instanceFolder('i'), 'sha256', a!.hash.slice(0, 2), `${a!.hash}-${a!.size}`);
    await writeFile(path, Buffer.from([0xff, 0xff, 0xff])); // only a read from disk would notice
    expect((await ac.get('i', a!))?.exitCode).toBe(1);
    await ac.put('i', a!, result(4));
    expect((await ac.get('i', a!))?.exitCode).toBe(4);
    expect(await ac.delete('i', a!)).toBe(true);
    expect(await ac.get('i', a!)).toBeUndefined();

    await ac.put('i', a!, result(1));
    await ac.put('i', b!, result(2));
    await ac.put('i', c!, result(3)); // a is evicted
    expect(await ac.get('i', a!)).toBeUndefined();
    await ac.close();
  });

  it('an entry is readable as soon as its put resolves, before its file is written, even with no memory cache', async () => {
    const ac = await DiskActionCacheStore.open({ dir, memoryCacheBytes: 0, writeOutQuietMs: 60_000 });
    const { digest } = await blob('just executed');
    await ac.put('i', digest, result(7));
    const path = join(dir, 'instances', instanceFolder('i'), 'sha256', digest.hash.slice(0, 2), `${digest.hash}-${digest.size}`);
    await expect(readFile(path)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await ac.get('i', digest))?.exitCode).toBe(7);
    await ac.writeOutFiles();
    expect(reapi.ActionResult.decode(await readFile(path)).exitCode).toBe(7);
    expect((await ac.get('i', digest))?.exitCode).toBe(7);
    await ac.close();
  });

  it('an entry acknowledged and killed before its file was written is there after a restart', async () => {
    const ac = await DiskActionCacheStore.open({ dir, writeOutQuietMs: 60_000 });
    const { digest } = await blob('acknowledged');
    await ac.put('i', digest, result(3));
    // No close: as after kill -9.
    const reopened = await DiskActionCacheStore.open({ dir });
    expect((await reopened.get('i', digest))?.exitCode).toBe(3);
    await reopened.close();
  });

  it('an entry evicted before its file is written never shows up as a file', async () => {
    const ac = await DiskActionCacheStore.open({ dir, maxEntries: 1, writeOutQuietMs: 60_000 });
    const [a, b] = await Promise.all(['a', 'b'].map(async (s) => (await blob(s)).digest));
    await ac.put('i', a!, result(1));
    await ac.put('i', b!, result(2)); // a is evicted
    await ac.writeOutFiles();
    const shard = (d: BlobDigest) => join(dir, 'instances', instanceFolder('i'), 'sha256', d.hash.slice(0, 2));
    expect(await readdir(shard(a!)).catch(() => [])).not.toContain(`${a!.hash}-${a!.size}`);
    expect(await readdir(shard(b!))).toContain(`${b!.hash}-${b!.size}`);
    expect(await ac.get('i', a!)).toBeUndefined();
    await ac.close();
  });

  it('a read from disk racing a put never leaves the older result remembered', async () => {
    let ac = await DiskActionCacheStore.open({ dir });
    const { digest } = await blob('raced');
    await ac.put('', digest, result(1));
    await ac.close();
    ac = await DiskActionCacheStore.open({ dir }); // nothing in memory: the next get reads the file
    const reading = ac.get('', digest);
    await ac.put('', digest, result(2));
    expect([1, 2]).toContain((await reading)?.exitCode);
    expect((await ac.get('', digest))?.exitCode).toBe(2);
    await ac.close();
  });

  it('stores each instance under a safe folder name and keeps the tmp folder clean', async () => {
    const ac = await DiskActionCacheStore.open({ dir });
    const { digest } = await blob('action');
    await ac.put('../../escape', digest, result(0));
    await ac.writeOutFiles();
    expect(instanceFolder('../../escape')).toMatch(/^[A-Za-z0-9_-]+~[0-9a-f]{16}$/);
    expect(await readdir(join(dir, 'instances'))).toEqual([instanceFolder('../../escape')]);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    await ac.close();
  });

  it('makes a shard folder removed behind its back again (folders are remembered, not re-made per put)', async () => {
    const ac = await DiskActionCacheStore.open({ dir });
    const { digest } = await blob('action');
    await ac.put('i', digest, result(1));
    await ac.writeOutFiles();
    await rm(join(dir, 'instances', instanceFolder('i'), 'sha256', digest.hash.slice(0, 2)), { recursive: true });
    await ac.put('i', digest, result(2));
    await ac.close();
    const reopened = await DiskActionCacheStore.open({ dir });
    expect((await reopened.get('i', digest))?.exitCode).toBe(2);
    await reopened.close();
  });

  it('treats a damaged entry as a miss and a smaller maxEntries trims at open', async () => {
    let ac = await DiskActionCacheStore.open({ dir });
    const [a, b] = await Promise.all(['a', 'b'].map(async (s) => (await blob(s)).digest));
    await ac.put('i', a!, result(1));
    await ac.put('i', b!, result(2));
    await ac.close();
    const path = join(dir, 'instances', instanceFolder('i'), 'sha256', b!.hash.slice(0, 2), `${b!.hash}-${b!.size}`);
    await writeFile(path, Buffer.from([0xff, 0xff, 0xff]));

    ac = await DiskActionCacheStore.open({ dir });
    expect(await ac.get('i', b!)).toBeUndefined();
    expect(ac.size()).toBe(1);
    await ac.close();

    await expect(DiskActionCacheStore.open({ dir, maxEntries: 0 })).rejects.toThrow(/positive integer/);
  });
});
