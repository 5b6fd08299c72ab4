// The action cache keeps an entry when the same action runs again and comes out
// the same apart from its execution metadata (engine/store/unchanged-results.ts),
// and writes every other put.
import { describe, expect, it } from 'vitest';
import type { BlobDigest } from '../../engine/digest';
import { reapi, timestampFromMs } from '../../engine/proto';
import { MemoryActionCacheStore, type ActionCacheStore } from '../../engine/store/action-cache-store';
import { UnchangedResultsActionCache } from '../../engine/store/unchanged-results';
import { blob } from './helpers';

/** A memory store that counts the puts that reach it. */
function counted(): ActionCacheStore & { puts: number } {
  const inner = new MemoryActionCacheStore();
  const store = Object.assign(Object.create(inner) as ActionCacheStore, { puts: 0 });
  store.put = async (instance: string, digest: BlobDigest, result: reapi.IActionResult) => {
    store.puts++;
    await inner.put(instance, digest, result);
  };
  return store as ActionCacheStore & { puts: number };
}

function ran(atMs: number, over: reapi.IActionResult = {}): reapi.IActionResult {
  return {
    exitCode: 0,
    outputFiles: [{ path: 'out/a.txt', digest: { hash: 'a'.repeat(64), sizeBytes: 9 }, isExecutable: false }],
    stdoutDigest: { hash: 'b'.repeat(64), sizeBytes: 4 },
    executionMetadata: { worker: `kiln@${atMs}`, workerStartTimestamp: timestampFromMs(atMs), workerCompletedTimestamp: timestampFromMs(atMs + 5) },
    ...over,
  };
}

describe('an action cache that keeps unchanged results', () => {
  it('keeps the stored entry, and its metadata, when a run comes out the same apart from its metadata', async () => {
    const inner = counted();
    const ac = new UnchangedResultsActionCache(inner);
    const { digest } = await blob('action');
    await ac.put('', digest, ran(1_000));
    await ac.put('', digest, ran(2_000));
    expect(inner.puts).toBe(1);
    expect((await ac.get('', digest))?.executionMetadata?.worker).toBe('kiln@1000');
  });

  it('writes a run that differs in anything but its metadata: outputs, exit code, logs', async () => {
    const { digest } = await blob('action');
    const changes: reapi.IActionResult[] = [
      { outputFiles: [{ path: 'out/a.txt', digest: { hash: 'c'.repeat(64), sizeBytes: 9 }, isExecutable: false }] },
      { outputFiles: [{ path: 'out/a.txt', digest: { hash: 'a'.repeat(64), sizeBytes: 9 }, isExecutable: true }] },
      { outputFiles: [] },
      { exitCode: 1 },
      { stdoutDigest: { hash: 'd'.repeat(64), sizeBytes: 4 } },
      { stderrRaw: Buffer.from('warning\n') },
    ];
    for (const change of changes) {
      const inner = counted();
      const ac = new UnchangedResultsActionCache(inner);
      await ac.put('', digest, ran(1_000));
      await ac.put('', digest, ran(2_000, change));
      expect(inner.puts, JSON.stringify(change)).toBe(2);
      expect((await ac.get('', digest))?.executionMetadata?.worker).toBe('kiln@2000');
    }
  });

  it('writes a first result, and keeps instances apart', async () => {
    const inner = counted();
    const ac = new UnchangedResultsActionCache(inner);
    const { digest } = await blob('action');
    await ac.put('a', digest, ran(1_000));
    await ac.put('b', digest, ran(2_000));
    expect(inner.puts).toBe(2);
    expect((await ac.get('b', digest))?.executionMetadata?.worker).toBe('kiln@2000');
  });
});
