import { beforeAll, describe, expect, it } from 'vitest';
import type { BlobDigest } from '../../engine/digest';
import { reapi } from '../../engine/proto';
import { MemoryActionCacheStore, type ActionCacheStore } from '../../engine/store/action-cache-store';
import { WriteBehindActionCache } from '../../engine/store/write-behind-action-cache';
import { blob } from './helpers';

let digest: BlobDigest;
beforeAll(async () => {
  digest = (await blob('an action')).digest;
});

function result(exitCode: number): reapi.ActionResult {
  return reapi.ActionResult.create({ exitCode, stdoutRaw: Buffer.from(`exit ${exitCode}`) });
}

/** A store whose puts wait until released, so a test can look between "visible" and "written". */
class GatedStore extends MemoryActionCacheStore {
  private gates: (() => void)[] = [];
  puts = 0;
  failNext = false;
  override async put(instance: string, d: BlobDigest, r: reapi.IActionResult): Promise<void> {
    await new Promise<void>((resolve) => this.gates.push(resolve));
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    this.puts++;
    await super.put(instance, d, r);
  }
  /** Lets every put waiting now go on (after the microtasks that start them). */
  async release(): Promise<void> {
    await settle();
    for (const g of this.gates.splice(0)) g();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

describe('WriteBehindActionCache', () => {
  it('answers getWithBytes (GetActionResult\'s path) with the entry\'s own bytes, while pending and once written', async () => {
    const inner = new GatedStore();
    const cache = new WriteBehindActionCache(inner);
    cache.putSoon('', digest, result(3));
    const pending = await cache.getWithBytes('', digest);
    expect(pending?.result.exitCode).toBe(3);
    expect(reapi.ActionResult.decode(pending!.bytes).exitCode).toBe(3);
    const flushed = cache.flush();
    await inner.release();
    await flushed;
    const written = await cache.getWithBytes('', digest);
    expect(written?.result.exitCode).toBe(3);
    expect(Buffer.from(written!.bytes)).toEqual(Buffer.from(pending!.bytes));
    expect(await cache.getWithBytes('', (await blob('never stored')).digest)).toBeUndefined();
  });

  it('answers an entry from putSoon at once, before the store has it, and the store has it after flush', async () => {
    const inner = new GatedStore();
    const cache = new WriteBehindActionCache(inner);
    cache.putSoon('', digest, result(0));
    expect((await cache.get('', digest))?.exitCode).toBe(0);
    expect(await inner.get('', digest)).toBeUndefined();
    const flushed = cache.flush();
    await inner.release();
    await flushed;
    expect((await inner.get('', digest))?.exitCode).toBe(0);
    expect((await cache.get('', digest))?.exitCode).toBe(0);
  });

  it('hands out copies: a caller changing its result does not change the entry', async () => {
    const cache = new WriteBehindActionCache(new GatedStore());
    cache.putSoon('', digest, result(0));
    const got = (await cache.get('', digest))!;
    got.exitCode = 9;
    expect((await cache.get('', digest))?.exitCode).toBe(0);
  });

  it('keeps instances apart', async () => {
    const cache = new WriteBehindActionCache(new GatedStore());
    cache.putSoon('a', digest, result(0));
    expect(await cache.get('b', digest)).toBeUndefined();
  });

  it('lets a durable put that follows a write-behind of the same entry win', async () => {
    const inner = new GatedStore();
    const cache = new WriteBehindActionCache(inner);
    cache.putSoon('', digest, result(1));
    const put = cache.put('', digest, result(2));
    await inner.release();
    await inner.release();
    await put;
    await cache.flush();
    expect((await inner.get('', digest))?.exitCode).toBe(2);
    expect((await cache.get('', digest))?.exitCode).toBe(2);
  });

  it('deletes an entry still being written, and it does not come back', async () => {
    const inner = new GatedStore();
    const cache = new WriteBehindActionCache(inner);
    cache.putSoon('', digest, result(0));
    const deleted = cache.delete('', digest);
    expect(await cache.get('', digest)).toBeUndefined();
    await inner.release();
    expect(await deleted).toBe(true);
    expect(await inner.get('', digest)).toBeUndefined();
  });

  it('logs a failed write and forgets the entry: the next get asks the store', async () => {
    const inner = new GatedStore();
    inner.failNext = true;
    const lines: string[] = [];
    const cache = new WriteBehindActionCache(inner, (l) => lines.push(l));
    cache.putSoon('', digest, result(0));
    const flushed = cache.flush();
    await inner.release();
    await flushed;
    expect(lines.join('\n')).toMatch(/could not write an action-cache entry: disk full/);
    expect(await cache.get('', digest)).toBeUndefined();
  });

  it('writes everything pending before it closes the store', async () => {
    const inner = new GatedStore();
    let closedWith = -1;
    inner.close = async () => {
      closedWith = inner.puts;
    };
    const cache: ActionCacheStore = new WriteBehindActionCache(inner);
    (cache as WriteBehindActionCache).putSoon('', digest, result(0));
    const closed = cache.close();
    await inner.release();
    await closed;
    expect(closedWith).toBe(1);
  });
});
