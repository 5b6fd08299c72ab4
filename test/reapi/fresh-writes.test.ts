// Small blobs and action-cache entries are acknowledged once their log record is
// synced; their files are written later (store/logged-files.ts). Through the real
// engine's gRPC services, everything a client may do right after the acknowledgement
// must see them: FindMissingBlobs, ByteStream Read, GetActionResult, and an Execute
// that hard-links a just-uploaded blob into its exec root. The stores here write
// files out only after a minute, so every read below meets an unwritten blob or entry.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../../engine/digest';
import { blobResourceName } from '../../engine/reapi/resource-names';
import { DiskActionCacheStore, instanceFolder } from '../../engine/store/action-cache-store';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { toWireDigest, uploadBlob } from '../helpers/blobs';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { executeRequest, responseOf, uploadAction } from '../execution/harness';

let t: TestEngine;
let storeDir: string;
let cas: DiskBlobStore;

beforeAll(async () => {
  storeDir = await mkdtemp(join(tmpdir(), 'kiln-fresh-'));
  cas = await DiskBlobStore.open({ dir: join(storeDir, 'cas'), budgetBytes: 1 << 30, writeOutQuietMs: 60_000 });
  // No memory cache of results: GetActionResult must find the unwritten entry itself.
  const ac = await DiskActionCacheStore.open({ dir: join(storeDir, 'ac'), memoryCacheBytes: 0, writeOutQuietMs: 60_000 });
  t = await startTestEngine({ blobStore: cas, actionCache: ac, config: { sandbox: 'off' } });
});

afterAll(async () => {
  await t?.stop();
  await rm(storeDir, { recursive: true, force: true });
});

describe('right after a small write is acknowledged', () => {
  it('FindMissingBlobs and ByteStream Read see a blob whose file is not written yet', async () => {
    // Larger than the small-blob cache keeps (64 KiB): the read goes to the disk store.
    const data = randomBytes(100 * 1024);
    const digest = await uploadBlob(t.clients, data);
    await expect(stat(cas.pathOf(digest))).rejects.toMatchObject({ code: 'ENOENT' });
    const missing = await t.clients.cas.findMissing({ blobDigests: [toWireDigest(digest)] });
    expect(missing.missingBlobDigests).toEqual([]);
    const { data: got } = await t.clients.byteStream.read({ resourceName: blobResourceName('', digest) });
    expect(got.equals(data)).toBe(true);
    const { data: part } = await t.clients.byteStream.read({ resourceName: blobResourceName('', digest), readOffset: 1000, readLimit: 500 });
    expect(part.equals(data.subarray(1000, 1500))).toBe(true);
  });

  it('Execute links a just-uploaded input, and GetActionResult answers before the entry is a file', async () => {
    const input = randomBytes(70 * 1024);
    const digest = await uploadAction(t.clients, { argv: ['/usr/bin/sha256sum', 'in.bin'], inputs: { 'in.bin': input } });
    const response = responseOf((await t.clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true }))).at(-1)!);
    expect(response.status?.code ?? 0).toBe(0);
    expect(response.result?.exitCode).toBe(0);
    expect(Buffer.from(response.result!.stdoutRaw ?? []).toString().split(' ')[0]).toBe((await digestOf(input)).hash);

    const entry = join(storeDir, 'ac', 'instances', instanceFolder(''), 'sha256', digest.hash.slice(0, 2), `${digest.hash}-${digest.size}`);
    await expect(stat(entry)).rejects.toMatchObject({ code: 'ENOENT' });
    const cached = await t.clients.actionCache.get({ actionDigest: toWireDigest(digest) });
    expect(cached.exitCode).toBe(0);
    expect(cached.stdoutDigest?.hash).toBe(response.result!.stdoutDigest?.hash);
  });
});
