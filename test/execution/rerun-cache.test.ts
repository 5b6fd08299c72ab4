// An action run again (skip_cache_lookup, as Bazel's --noremote_accept_cached
// asks) through a real engine and its disk action cache: a run that comes out
// the same leaves the stored entry as it was, one that differs replaces it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { toWireDigest } from '../helpers/blobs';
import { executeRequest, responseOf, uploadAction } from './harness';

describe('an action run again', () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await startTestEngine();
  });
  afterAll(async () => {
    await t?.stop();
  });

  const runAgain = async (digest: Parameters<typeof executeRequest>[0]) => {
    const ops = await t.clients.execution.execute.collect(executeRequest(digest, { skipCacheLookup: true }));
    const response = responseOf(ops.at(-1)!);
    expect(response.result?.exitCode).toBe(0);
    return response.result!;
  };
  const stored = async (digest: Parameters<typeof executeRequest>[0]) => t.clients.actionCache.get({ actionDigest: toWireDigest(digest) });

  it('keeps the cached entry of the first run when the second comes out the same', async () => {
    const digest = await uploadAction(t.clients, { argv: ['/bin/sh', '-c', 'echo same > out.txt'], outputPaths: ['out.txt'], salt: 'same' });
    const first = await runAgain(digest);
    const second = await runAgain(digest);
    // Two runs, each with its own start time.
    expect(second.executionMetadata?.workerStartTimestamp).not.toEqual(first.executionMetadata?.workerStartTimestamp);
    const entry = await stored(digest);
    expect(entry.outputFiles.map((f) => f.path)).toEqual(['out.txt']);
    expect(entry.executionMetadata?.workerStartTimestamp).toEqual(first.executionMetadata?.workerStartTimestamp);
  });

  it('replaces the cached entry when the run comes out different', async () => {
    const digest = await uploadAction(t.clients, { argv: ['/bin/sh', '-c', 'date +%s%N > out.txt'], outputPaths: ['out.txt'], salt: 'differs' });
    await runAgain(digest);
    const second = await runAgain(digest);
    const entry = await stored(digest);
    expect(entry.outputFiles[0].digest).toEqual(second.outputFiles[0].digest);
    expect(entry.executionMetadata?.workerStartTimestamp).toEqual(second.executionMetadata?.workerStartTimestamp);
  });
});
