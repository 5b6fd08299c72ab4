import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIGEST_FUNCTIONS, emptyDigest } from '../../engine/digest';
import { decodeStatusDetails, unpackDetail } from '../../engine/grpc/status';
import { reapi, rpc } from '../../engine/proto';
import {
  Status,
  digestOf,
  fnEnum,
  grpcError,
  protoDigest,
  randomBlob,
  startTestEngine,
  toWireDigest,
  uploadBlob,
  uploadProto,
  type TestEngine,
} from '../helpers';

const MiB = 1024 * 1024;
let t: TestEngine;

beforeAll(async () => {
  t = await startTestEngine();
});
afterAll(async () => {
  await t?.stop();
});

describe('Capabilities', () => {
  it('advertises the cache and execution capabilities', async () => {
    const caps = await t.clients.capabilities.get({ instanceName: '' });
    const cache = caps.cacheCapabilities!;
    expect(cache.digestFunctions).toEqual([reapi.DigestFunction.Value.SHA256, reapi.DigestFunction.Value.BLAKE3]);
    expect(cache.actionCacheUpdateCapabilities?.updateEnabled).toBe(true);
    expect(Number(cache.maxBatchTotalSizeBytes)).toBe(4 * MiB);
    expect(cache.symlinkAbsolutePathStrategy).toBe(reapi.SymlinkAbsolutePathStrategy.Value.DISALLOWED);
    expect(cache.supportedCompressors).toEqual([reapi.Compressor.Value.ZSTD]);
    const exec = caps.executionCapabilities!;
    expect(exec.digestFunction).toBe(reapi.DigestFunction.Value.SHA256);
    expect(exec.digestFunctions).toEqual(cache.digestFunctions);
    expect(caps.lowApiVersion).toMatchObject({ major: 2, minor: 0 });
    expect(caps.deprecatedApiVersion).toMatchObject({ major: 2, minor: 0 });
    expect(caps.highApiVersion).toMatchObject({ major: 2, minor: 3 });
  });

  it('reports exec_enabled following the execution toggle', async () => {
    t.engine.setExecutionEnabled(false);
    expect((await t.clients.capabilities.get()).executionCapabilities?.execEnabled).toBe(false);
    t.engine.setExecutionEnabled(true);
    expect((await t.clients.capabilities.get()).executionCapabilities?.execEnabled).toBe(true);
  });

  it('rejects an instance name using a reserved word', async () => {
    const err = await grpcError(t.clients.capabilities.get({ instanceName: 'team/blobs' }));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/reserved word "blobs"/);
  });
});

describe('FindMissingBlobs', () => {
  it('reports what is absent and never the empty blob', async () => {
    const present = await uploadBlob(t.clients, Buffer.from('present'));
    const absent = await digestOf(Buffer.from('absent'));
    const res = await t.clients.cas.findMissing({
      blobDigests: [toWireDigest(present), toWireDigest(absent), toWireDigest(emptyDigest())],
    });
    expect(res.missingBlobDigests.map((d) => d.hash)).toEqual([absent.hash]);
  });

  it('keeps digest functions apart', async () => {
    const data = Buffer.from('same bytes, other function');
    await uploadBlob(t.clients, data, { fn: 'sha256' });
    const b3 = await digestOf(data, 'blake3');
    const res = await t.clients.cas.findMissing({ digestFunction: fnEnum('blake3'), blobDigests: [toWireDigest(b3), toWireDigest(emptyDigest('blake3'))] });
    expect(res.missingBlobDigests.map((d) => d.hash)).toEqual([b3.hash]);
  });

  it('rejects malformed digests with the field named', async () => {
    for (const bad of [
      { hash: 'ABC', sizeBytes: 1 },
      { hash: 'a'.repeat(64), sizeBytes: -1 },
      { hash: 'A'.repeat(64), sizeBytes: 1 },
      { hash: `${'a'.repeat(63)}g`, sizeBytes: 1 },
      { hash: `${'a'.repeat(63)}é`, sizeBytes: 1 },
    ]) {
      const err = await grpcError(t.clients.cas.findMissing({ blobDigests: [toWireDigest(emptyDigest()), bad] }));
      expect(err.code).toBe(Status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/blob_digests\[1\]/);
      const br = unpackDetail(rpc.BadRequest, decodeStatusDetails(err.metadata));
      expect(br?.fieldViolations[0]?.field).toBe('blob_digests[1]');
    }
  });

  it('rejects an unsupported digest function', async () => {
    const err = await grpcError(
      t.clients.cas.findMissing({ digestFunction: reapi.DigestFunction.Value.MD5, blobDigests: [{ hash: 'a'.repeat(32), sizeBytes: 1 }] }),
    );
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/MD5 is not supported/);
  });
});

describe('BatchUpdateBlobs / BatchReadBlobs', () => {
  it('stores and returns blobs with a status per blob', async () => {
    const a = Buffer.from('alpha');
    const b = Buffer.from('beta');
    const da = await digestOf(a);
    const db = await digestOf(b);
    const wrong = await digestOf(Buffer.from('BETA')); // same size, other content
    const up = await t.clients.cas.batchUpdate({
      requests: [
        { digest: toWireDigest(da), data: a },
        { digest: toWireDigest(wrong), data: b },
        { digest: { hash: 'zz', sizeBytes: 2 }, data: b },
      ],
    });
    expect(up.responses.map((r) => r.status?.code ?? 0)).toEqual([Status.OK, Status.INVALID_ARGUMENT, Status.INVALID_ARGUMENT]);
    expect(up.responses[1]!.status!.message).toMatch(/hashes to/);

    const read = await t.clients.cas.batchRead({ digests: [toWireDigest(da), toWireDigest(wrong), toWireDigest(db), toWireDigest(emptyDigest())] });
    expect(read.responses.map((r) => r.status?.code ?? 0)).toEqual([Status.OK, Status.NOT_FOUND, Status.NOT_FOUND, Status.OK]);
    expect(Buffer.from(read.responses[0]!.data).toString()).toBe('alpha');
    expect(read.responses[3]!.data.length).toBe(0);
  });

  it('answers a per-blob INVALID_ARGUMENT for a malformed digest in a read', async () => {
    const read = await t.clients.cas.batchRead({ digests: [{ hash: 'nothex', sizeBytes: 1 }] });
    expect(read.responses[0]!.status!.code).toBe(Status.INVALID_ARGUMENT);
  });

  it('stores blake3 blobs', async () => {
    const data = Buffer.from('blake3 content');
    const d = await uploadBlob(t.clients, data, { fn: 'blake3' });
    const read = await t.clients.cas.batchRead({ digestFunction: fnEnum('blake3'), digests: [toWireDigest(d)] });
    expect(Buffer.from(read.responses[0]!.data)).toEqual(data);
  });

  it('rejects batches over max_batch_total_size_bytes with INVALID_ARGUMENT, not a transport error', async () => {
    const big = randomBlob(3 * MiB);
    const big2 = randomBlob(2 * MiB);
    const [d1, d2] = [await digestOf(big), await digestOf(big2)];
    const err = await grpcError(
      t.clients.cas.batchUpdate({ requests: [{ digest: toWireDigest(d1), data: big }, { digest: toWireDigest(d2), data: big2 }] }),
    );
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/max_batch_total_size_bytes/);
    expect((await t.clients.cas.findMissing({ blobDigests: [toWireDigest(d1)] })).missingBlobDigests).toHaveLength(1);

    const readErr = await grpcError(t.clients.cas.batchRead({ digests: [toWireDigest(d1), toWireDigest(d2)] }));
    expect(readErr.code).toBe(Status.INVALID_ARGUMENT);
  });
});

describe('GetTree', () => {
  // root → a, b; a → shared; b → shared, missing
  async function buildTree() {
    const file = await uploadBlob(t.clients, Buffer.from('leaf file'));
    const shared = reapi.Directory.create({ files: [{ name: 'f', digest: toWireDigest(file) }] });
    const sharedD = (await uploadProto(t.clients, reapi.Directory, shared)).digest;
    const missing = reapi.Directory.create({ files: [{ name: 'never-uploaded', digest: toWireDigest(file) }] });
    const missingD = await protoDigest(reapi.Directory, missing);
    const a = reapi.Directory.create({ directories: [{ name: 's', digest: toWireDigest(sharedD) }] });
    const b = reapi.Directory.create({
      directories: [
        { name: 'm', digest: toWireDigest(missingD) },
        { name: 's', digest: toWireDigest(sharedD) },
      ],
      files: [{ name: 'g', digest: toWireDigest(file) }],
    });
    const aD = (await uploadProto(t.clients, reapi.Directory, a)).digest;
    const bD = (await uploadProto(t.clients, reapi.Directory, b)).digest;
    const root = reapi.Directory.create({
      directories: [
        { name: 'a', digest: toWireDigest(aD) },
        { name: 'b', digest: toWireDigest(bD) },
      ],
    });
    const rootD = (await uploadProto(t.clients, reapi.Directory, root)).digest;
    return { rootD, expected: [root, a, b, shared].map((d) => reapi.Directory.encode(d).finish()) };
  }

  it('streams every present directory once, omitting missing subtrees', async () => {
    const { rootD, expected } = await buildTree();
    const pages = await t.clients.cas.getTree({ rootDigest: toWireDigest(rootD) });
    const dirs = pages.flatMap((p) => p.directories).map((d) => Buffer.from(reapi.Directory.encode(d).finish()));
    expect(dirs).toEqual(expected.map((b) => Buffer.from(b)));
    expect(pages.at(-1)!.nextPageToken).toBe('');
  });

  it('pages by page_size and resumes from a page token', async () => {
    const { rootD, expected } = await buildTree();
    const pages = await t.clients.cas.getTree({ rootDigest: toWireDigest(rootD), pageSize: 2 });
    expect(pages.map((p) => p.directories.length)).toEqual([2, 2]);
    expect(pages[0]!.nextPageToken).not.toBe('');

    const resumed = await t.clients.cas.getTree({ rootDigest: toWireDigest(rootD), pageSize: 1, pageToken: pages[0]!.nextPageToken });
    const dirs = resumed.flatMap((p) => p.directories).map((d) => Buffer.from(reapi.Directory.encode(d).finish()));
    expect(dirs).toEqual(expected.slice(2).map((b) => Buffer.from(b)));
  });

  it('answers NOT_FOUND for a missing root and INVALID_ARGUMENT for a foreign token', async () => {
    const ghost = await digestOf(Buffer.from('no such directory'));
    expect((await grpcError(t.clients.cas.getTree({ rootDigest: toWireDigest(ghost) }))).code).toBe(Status.NOT_FOUND);
    const { rootD } = await buildTree();
    const err = await grpcError(t.clients.cas.getTree({ rootDigest: toWireDigest(rootD), pageToken: 'garbage' }));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/page_token/);
  });

  it('knows the empty directory hash is the empty blob of each function', () => {
    expect(DIGEST_FUNCTIONS.sha256.emptyHash).toHaveLength(64);
  });
});
