// Statuses a client can act on: bounded messages however long its input, a full
// store or disk as RESOURCE_EXHAUSTED, and no server paths in what it is told.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_STATUS_MESSAGE_CHARS } from '../../engine/common/fault-errors';
import { toGrpcError } from '../../engine/grpc/status';
import { uploadResourceName } from '../../engine/reapi/resource-names';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { Status, digestOf, grpcError, randomBlob, startTestEngine, toWireDigest, type TestEngine } from '../helpers';

/** Room for the "… (N more characters not shown)" tail after the cut. */
const MESSAGE_BOUND = MAX_STATUS_MESSAGE_CHARS + 64;

describe('status messages echoing client input', () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await startTestEngine();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('are cut short, so a 200 KB resource name gets its INVALID_ARGUMENT and the connection keeps serving', async () => {
    const name = `${'x'.repeat(200_000)}/blobs/nothex/5`;
    const deadline = () => ({ deadline: Date.now() + 20_000 });
    const err = await grpcError(t.clients.byteStream.read({ resourceName: name }, deadline()));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.details.length).toBeLessThanOrEqual(MESSAGE_BOUND);
    // The same connection still answers.
    const caps = await t.clients.capabilities.get();
    expect(caps.cacheCapabilities).toBeTruthy();
  });

  it('are cut short in per-blob batch statuses too', async () => {
    const data = Buffer.from('some bytes');
    const d = await digestOf(data);
    const res = await t.clients.cas.batchUpdate({
      instanceName: 'i'.repeat(100_000),
      requests: [{ digest: toWireDigest(d), data }],
    }).catch((e: { code: number; details: string }) => e);
    const text = 'details' in res ? res.details : JSON.stringify(res);
    expect(text.length).toBeLessThanOrEqual(MESSAGE_BOUND + 200);
  });
});

describe('a store that cannot take a blob', () => {
  let t: TestEngine;
  let storeDir: string;
  beforeAll(async () => {
    storeDir = await mkdtemp(join(tmpdir(), 'kiln-small-store-'));
    const blobStore = await DiskBlobStore.open({ dir: storeDir, budgetBytes: 64 * 1024 });
    t = await startTestEngine({ blobStore });
  });
  afterAll(async () => {
    await t?.stop();
    await rm(storeDir, { recursive: true, force: true });
  });

  it('answers a blob larger than the whole budget RESOURCE_EXHAUSTED in a batch, saying what to do', async () => {
    const data = randomBlob(100 * 1024);
    const d = await digestOf(data);
    const res = await t.clients.cas.batchUpdate({ requests: [{ digest: toWireDigest(d), data }] });
    expect(res.responses[0]!.status!.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(res.responses[0]!.status!.message).toMatch(/cache budget.*raise the cache size/);
  });

  it('answers the same on a ByteStream upload', async () => {
    const data = randomBlob(100 * 1024);
    const d = await digestOf(data);
    const err = await grpcError(
      t.clients.byteStream.write([{ resourceName: uploadResourceName('', 'u1', d), writeOffset: 0, data, finishWrite: true }]),
    );
    expect(err.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/larger than the whole cache budget/);
  });
});

describe('file system errors a request can cause', () => {
  const errno = (code: string, path: string) => Object.assign(new Error(`${code}: failed, open '${path}'`), { code, syscall: 'open', path });

  it('maps a full disk to RESOURCE_EXHAUSTED with what to do, and no path', () => {
    const e = toGrpcError(errno('ENOSPC', '/home/someone/.kiln/cas/tmp/abc'));
    expect(e.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(e.message).toMatch(/disk is full.*free disk space/);
    expect(e.message).not.toMatch(/\/home/);
  });

  it('maps a name too long for the file system to INVALID_ARGUMENT without the server path', () => {
    const e = toGrpcError(errno('ENAMETOOLONG', `/srv/kiln/exec/1/${'n'.repeat(300)}`));
    expect(e.code).toBe(Status.INVALID_ARGUMENT);
    expect(e.message).not.toMatch(/\/srv/);
  });

  it('keeps other errors INTERNAL but still without the path', () => {
    const e = toGrpcError(errno('EIO', '/srv/kiln/cas/ab/cd'));
    expect(e.code).toBe(Status.INTERNAL);
    expect(e.message).toContain('EIO');
    expect(e.message).not.toMatch(/\/srv/);
  });
});

describe('a request that is not a valid protobuf', () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await startTestEngine();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it.each([
    '/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs',
    '/build.bazel.remote.execution.v2.ActionCache/GetActionResult',
  ])('is INVALID_ARGUMENT on %s, not INTERNAL', async (path) => {
    const client = t.clients.raw.Capabilities;
    const identity = (b: Buffer) => b;
    // A length-delimited field whose length runs past the end of the message.
    const garbage = Buffer.from([0x0a, 0xff, 0x01, 0x02]);
    const err = await new Promise<{ code: number; details: string }>((resolve) =>
      client.makeUnaryRequest(path, identity, identity, garbage, (e) => resolve({ code: e?.code ?? 0, details: e?.details ?? '' })),
    );
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/not a valid .* message/);
  });
});
