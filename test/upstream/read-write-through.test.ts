// The local stores as a cache in front of an upstream (a second, in-process
// Kiln): misses are read through, writes reach the upstream once the
// background queue drains, and the queue outlives a restart.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { toWireDigest } from '../../engine/digest';
import { blobResourceName } from '../../engine/reapi/resource-names';
import { MemoryActionCacheStore } from '../../engine/store/action-cache-store';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { UpstreamClient } from '../../engine/upstream/upstream-client';
import { WriteThroughQueue } from '../../engine/upstream/write-through-queue';
import { digestOf, randomBlob, uploadBlob } from '../helpers/blobs';
import { grpcError, Status } from '../helpers/clients';
import { startTestEngine, type TestEngine } from '../helpers/engine';

const running: TestEngine[] = [];
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

async function pair(): Promise<{ upstream: TestEngine; kiln: TestEngine }> {
  const upstream = await startTestEngine();
  running.push(upstream);
  const kiln = await startTestEngine({ config: { upstream: `grpc://127.0.0.1:${upstream.engine.grpcPort}` } });
  running.push(kiln);
  return { upstream, kiln };
}

describe('read-through', () => {
  it('streams a blob only the upstream has to the client, and keeps it locally', async () => {
    const { upstream, kiln } = await pair();
    const data = randomBlob(3 * 1024 * 1024 + 17);
    const digest = await uploadBlob(upstream.clients, data);
    expect(await kiln.engine.store.has(digest)).toBe(false);

    const { data: got } = await kiln.clients.byteStream.read({ resourceName: blobResourceName('', digest) });
    expect(got.equals(data)).toBe(true);
    await vi.waitFor(async () => expect(await kiln.engine.store.has(digest)).toBe(true), { timeout: 10_000 });
  });

  it('answers NOT_FOUND for a blob neither has', async () => {
    const { kiln } = await pair();
    const digest = await digestOf(Buffer.from('nowhere'));
    const err = await grpcError(kiln.clients.byteStream.read({ resourceName: blobResourceName('', digest) }));
    expect(err.code).toBe(Status.NOT_FOUND);
  });

  it('serves an action result only the upstream has, with its outputs', async () => {
    const { upstream, kiln } = await pair();
    const output = await uploadBlob(upstream.clients, Buffer.from('built upstream'));
    const actionDigest = await digestOf(Buffer.from('some action'));
    await upstream.clients.actionCache.update({
      actionDigest: toWireDigest(actionDigest),
      actionResult: { exitCode: 0, outputFiles: [{ path: 'out/a.txt', digest: toWireDigest(output) }] },
    });

    const result = await kiln.clients.actionCache.get({ actionDigest: toWireDigest(actionDigest) });
    expect(result.outputFiles[0]?.digest?.hash).toBe(output.hash);
    // Both now answer from the local cache.
    expect(await kiln.engine.store.has(output)).toBe(true);
    expect(await kiln.engine.actionCache.get('', actionDigest)).toBeDefined();
  });
});

describe('write-through', () => {
  it('copies what is uploaded here, and results with their outputs, to the upstream', async () => {
    const { upstream, kiln } = await pair();
    const blob = await uploadBlob(kiln.clients, randomBlob(2 * 1024 * 1024));
    const output = await uploadBlob(kiln.clients, Buffer.from('an output'));
    const actionDigest = await digestOf(Buffer.from('another action'));
    await kiln.clients.actionCache.update({
      actionDigest: toWireDigest(actionDigest),
      actionResult: { exitCode: 0, outputFiles: [{ path: 'o', digest: toWireDigest(output) }] },
    });

    await kiln.engine.upstreamQueue!.drained();
    const missing = await upstream.clients.cas.findMissing({ blobDigests: [blob, output].map(toWireDigest) });
    expect(missing.missingBlobDigests).toEqual([]);
    const result = await upstream.clients.actionCache.get({ actionDigest: toWireDigest(actionDigest) });
    expect(result.outputFiles[0]?.digest?.hash).toBe(output.hash);
    expect(kiln.engine.upstreamStatus()?.pendingUploads).toBe(0);
  });

  it('keeps what it could not copy across a restart, and copies it once the upstream answers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-wt-queue-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const store = new MemoryBlobStore();
    const data = Buffer.from('queued while the upstream was away');
    const digest = await digestOf(data);
    await store.writeAll(digest, data);

    // An upstream that is not there: the item stays queued and is saved.
    const gone = await startTestEngine();
    const deadUrl = `grpc://127.0.0.1:${gone.engine.grpcPort}`;
    await gone.stop();
    const deadClient = new UpstreamClient({ url: deadUrl });
    const first = new WriteThroughQueue({ upstream: deadClient, store, actionCache: new MemoryActionCacheStore(), dir, retryMs: 60_000 });
    first.add({ kind: 'blob', digest });
    await vi.waitFor(() => expect(deadClient.status().reachable).toBe(false), { timeout: 10_000 });
    expect(first.pending).toBe(1);
    await first.close();
    deadClient.close();

    // "Restart" against an upstream that answers: the saved item is copied.
    const upstream = await startTestEngine();
    running.push(upstream);
    const client = new UpstreamClient({ url: `grpc://127.0.0.1:${upstream.engine.grpcPort}` });
    cleanups.push(() => client.close());
    const second = new WriteThroughQueue({ upstream: client, store, actionCache: new MemoryActionCacheStore(), dir });
    cleanups.push(() => second.close());
    expect(second.pending).toBe(1);
    await second.drained();
    expect(await upstream.engine.store.has(digest)).toBe(true);
  });
});
