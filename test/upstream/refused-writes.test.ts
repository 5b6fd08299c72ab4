// An upstream that lets Kiln read and execute but not write its action cache
// (a read-only API key): the refused result is dropped from the queue, and the
// upstream stays usable.
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { toWireDigest } from '../../engine/digest';
import { ActionCacheService, ContentAddressableStorageService } from '../../engine/grpc/services';
import { createCasService } from '../../engine/reapi/cas';
import { MemoryActionCacheStore } from '../../engine/store/action-cache-store';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { UpstreamClient } from '../../engine/upstream/upstream-client';
import { WriteThroughQueue } from '../../engine/upstream/write-through-queue';
import { digestOf } from '../helpers/blobs';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function readOnlyUpstream(): Promise<{ url: string; store: MemoryBlobStore; updates: () => number }> {
  const store = new MemoryBlobStore();
  let updates = 0;
  const server = new grpc.Server();
  server.addService(ContentAddressableStorageService, createCasService({ store, maxBatchTotalSizeBytes: 4 * 1024 * 1024 }));
  server.addService(ActionCacheService, {
    getActionResult: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.NOT_FOUND, details: 'none' }),
    updateActionResult: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      updates++;
      cb({ code: grpc.status.PERMISSION_DENIED, details: 'this key may not write the action cache' });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => server.forceShutdown());
  return { url: `grpc://127.0.0.1:${port}`, store, updates: () => updates };
}

describe('an upstream that refuses action-cache writes', () => {
  it('still gets the blobs, drops the refused result, and stays usable', async () => {
    const up = await readOnlyUpstream();
    const dir = await mkdtemp(join(tmpdir(), 'kiln-refused-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const store = new MemoryBlobStore();
    const actionCache = new MemoryActionCacheStore();
    const output = Buffer.from('an output');
    const outDigest = await digestOf(output);
    await store.writeAll(outDigest, output);
    const actionDigest = await digestOf(Buffer.from('the action'));
    await actionCache.put('', actionDigest, { exitCode: 0, outputFiles: [{ path: 'o', digest: toWireDigest(outDigest) }] });

    const client = new UpstreamClient({ url: up.url });
    cleanups.push(() => client.close());
    const queue = new WriteThroughQueue({ upstream: client, store, actionCache, dir, log: () => {} });
    cleanups.push(() => queue.close());
    queue.add({ kind: 'action', instance: '', digest: actionDigest });
    await queue.drained();

    expect(up.updates()).toBe(1);
    expect(await up.store.has(outDigest)).toBe(true);
    expect(queue.pending).toBe(0);
    expect(client.reachable).toBe(true);
  });
});
