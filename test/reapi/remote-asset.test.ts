// Remote Asset API (Fetch, Push) against a real engine and a local HTTP server
// the test runs on 127.0.0.1 (no internet here, and none needed).
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AssetIndex } from '../../engine/asset/asset-index';
import { DownloadError, downloadToFile } from '../../engine/asset/http-download';
import { sha256ToSri, sriToSha256 } from '../../engine/asset/qualifiers';
import type { KilnEvent } from '../../engine/events/event-bus';
import { decodeStatusDetails, unpackDetail } from '../../engine/grpc/status';
import { durationFromMs, reapi, rpc } from '../../engine/proto';
import { blobResourceName } from '../../engine/reapi/resource-names';
import { Status, digestOf, grpcError, startTestEngine, toWireDigest, uploadBlob, uploadProto, type TestEngine } from '../helpers';

const LIMIT = 1024 * 1024;
let t: TestEngine;
let http: Server;
let base = '';
const hits = new Map<string, number>();
const routes = new Map<string, (res: ServerResponse) => void>();
const events: Extract<KilnEvent, { type: 'asset.fetched' }>[] = [];

const archive = Buffer.from('pretend this is a .tar.gz of a toolchain\n'.repeat(2000));
const sri = (data: Buffer) => sha256ToSri(createHash('sha256').update(data).digest('hex'));

beforeAll(async () => {
  t = await startTestEngine({ config: { assetMaxDownloadBytes: LIMIT } });
  t.engine.events.on('asset.fetched', (e) => events.push(e));
  routes.set('/archive.tar.gz', (res) => res.end(archive));
  routes.set('/other.tar.gz', (res) => res.end(Buffer.from('another archive')));
  routes.set('/mirror.tar.gz', (res) => res.end(archive));
  routes.set('/big.bin', (res) => res.end(Buffer.alloc(LIMIT + 1)));
  routes.set('/big-chunked.bin', (res) => {
    // No Content-Length: the limit has to hold while streaming.
    for (let i = 0; i < 5; i++) res.write(Buffer.alloc(LIMIT / 2));
    res.end();
  });
  routes.set('/hangs', () => {}); // never answers
  routes.set('/moved', (res) => {
    res.statusCode = 302;
    res.setHeader('location', '/archive.tar.gz');
    res.end();
  });
  routes.set('/to-file', (res) => {
    res.statusCode = 301;
    res.setHeader('location', 'file:///etc/passwd');
    res.end();
  });
  http = createServer((req, res) => {
    const path = req.url ?? '';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const route = routes.get(path);
    if (!route) {
      res.statusCode = 404;
      res.end('not here');
      return;
    }
    route(res);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

afterAll(async () => {
  http?.closeAllConnections();
  await new Promise((resolve) => http?.close(resolve));
  await t?.stop();
});

describe('FetchBlob', () => {
  it('downloads by URL, verifies checksum.sri, stores in the CAS, then answers from the CAS', async () => {
    const uri = `${base}/archive.tar.gz`;
    const res = await t.clients.asset.fetchBlob({ uris: [uri], qualifiers: [{ name: 'checksum.sri', value: sri(archive) }] });
    expect(res.status?.code ?? 0).toBe(Status.OK);
    expect(res.uri).toBe(uri);
    const d = await digestOf(archive);
    expect(res.blobDigest?.hash).toBe(d.hash);
    expect(Number(res.blobDigest?.sizeBytes)).toBe(archive.length);
    expect((await t.clients.byteStream.read({ resourceName: blobResourceName('', d) })).data.equals(archive)).toBe(true);
    expect(hits.get('/archive.tar.gz')).toBe(1);

    // Again, by checksum from another URL, and by URL alone: no new download.
    const byChecksum = await t.clients.asset.fetchBlob({ uris: [`${base}/gone.tar.gz`], qualifiers: [{ name: 'checksum.sri', value: sri(archive) }] });
    expect(byChecksum.blobDigest?.hash).toBe(d.hash);
    const byUri = await t.clients.asset.fetchBlob({ uris: [uri] });
    expect(byUri.blobDigest?.hash).toBe(d.hash);
    expect(hits.get('/archive.tar.gz')).toBe(1);
    expect(hits.get('/gone.tar.gz')).toBeUndefined();

    const mine = events.filter((e) => e.uri.endsWith('archive.tar.gz') || e.uri.endsWith('gone.tar.gz'));
    expect(mine.map((e) => e.outcome)).toEqual(['downloaded', 'hit', 'hit']);
    expect(mine[0]!.bytes).toBe(archive.length);
  });

  it('answers ABORTED for a checksum mismatch and stores nothing', async () => {
    const body = Buffer.from('another archive');
    const res = await t.clients.asset.fetchBlob({ uris: [`${base}/other.tar.gz`], qualifiers: [{ name: 'checksum.sri', value: sri(Buffer.from('expected')) }] });
    expect(res.status?.code).toBe(Status.ABORTED);
    expect(res.status?.message).toMatch(/checksum\.sri/);
    const missing = await t.clients.cas.findMissing({ blobDigests: [toWireDigest(await digestOf(body))] });
    expect(missing.missingBlobDigests).toHaveLength(1);
  });

  it('answers NOT_FOUND for a 404 and tries the next mirror', async () => {
    const gone = await t.clients.asset.fetchBlob({ uris: [`${base}/nowhere.tar.gz`] });
    expect(gone.status?.code).toBe(Status.NOT_FOUND);
    expect(gone.status?.message).toMatch(/404/);

    const mirrored = await t.clients.asset.fetchBlob({
      uris: [`${base}/nowhere.tar.gz`, `${base}/mirror.tar.gz`],
      qualifiers: [{ name: 'checksum.sri', value: sri(archive) }],
    });
    expect(mirrored.status?.code ?? 0).toBe(Status.OK);
  });

  it('answers DEADLINE_EXCEEDED when the origin does not answer within the timeout', async () => {
    const res = await t.clients.asset.fetchBlob({ uris: [`${base}/hangs`], timeout: durationFromMs(1500) });
    expect(res.status?.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(res.status?.message).toMatch(/longer than 1500 ms/);
  });

  it('answers RESOURCE_EXHAUSTED past the download limit, declared or streamed', async () => {
    for (const path of ['/big.bin', '/big-chunked.bin']) {
      const res = await t.clients.asset.fetchBlob({ uris: [`${base}${path}`] });
      expect(res.status?.code, path).toBe(Status.RESOURCE_EXHAUSTED);
      expect(res.status?.message, path).toMatch(/download limit/);
    }
  });

  it('refuses non-http(s) URLs, no URL, and unknown qualifiers with INVALID_ARGUMENT', async () => {
    for (const uri of ['file:///etc/passwd', 'ftp://127.0.0.1/x', 'not a url']) {
      const err = await grpcError(t.clients.asset.fetchBlob({ uris: [uri] }));
      expect(err.code, uri).toBe(Status.INVALID_ARGUMENT);
      expect(err.details, uri).toMatch(/not an http\(s\) URL/);
    }
    expect((await grpcError(t.clients.asset.fetchBlob({ uris: [] }))).details).toMatch(/at least one URI/);
    const q = await grpcError(t.clients.asset.fetchBlob({ uris: [`${base}/archive.tar.gz`], qualifiers: [{ name: 'vcs.commit', value: 'abc' }] }));
    expect(q.code).toBe(Status.INVALID_ARGUMENT);
    const bad = unpackDetail(rpc.BadRequest, decodeStatusDetails(q.metadata));
    expect(bad?.fieldViolations[0]?.field).toBe('qualifiers.name');
    expect(bad?.fieldViolations[0]?.description).toMatch(/"vcs.commit" not supported/);
    const sriErr = await grpcError(t.clients.asset.fetchBlob({ uris: [`${base}/archive.tar.gz`], qualifiers: [{ name: 'checksum.sri', value: 'sha384-abc' }] }));
    expect(sriErr.details).toMatch(/no sha256 expression/);
  });
});

describe('downloads', () => {
  it('follows redirects to http(s) only, and in LAN mode refuses loopback URLs', async () => {
    const tmpDir = await mkdtemp(join(tmpdir(), 'kiln-download-'));
    try {
      const opts = { tmpDir, timeoutMs: 30_000, maxBytes: LIMIT };
      const moved = await downloadToFile(`${base}/moved`, opts);
      expect(moved.size).toBe(archive.length);
      await expect(downloadToFile(`${base}/to-file`, opts)).rejects.toThrow(/not an http\(s\) URL/);
      const lan = downloadToFile(`${base}/archive.tar.gz`, { ...opts, refuseLoopback: true });
      await expect(lan).rejects.toBeInstanceOf(DownloadError);
      await expect(lan).rejects.toThrow(/does not download from loopback/);
      await expect(downloadToFile('http://localhost:1/x', { ...opts, refuseLoopback: true })).rejects.toThrow(/loopback/);
    } finally {
      await rm(tmpDir, { recursive: true, force: true });
    }
  });
});

describe('Push', () => {
  it('records URI → blob for later fetches, and refuses a blob that is not in the CAS', async () => {
    const data = Buffer.from('pushed content');
    const d = await digestOf(data);
    const uri = 'https://example.invalid/pushed.tar.gz'; // never contacted
    const missing = await grpcError(t.clients.asset.pushBlob({ uris: [uri], blobDigest: toWireDigest(d) }));
    expect(missing.code).toBe(Status.FAILED_PRECONDITION);
    await uploadBlob(t.clients, data);
    await t.clients.asset.pushBlob({ uris: [uri], blobDigest: toWireDigest(d) });
    const res = await t.clients.asset.fetchBlob({ uris: [uri] });
    expect(res.status?.code ?? 0).toBe(Status.OK);
    expect(res.blobDigest?.hash).toBe(d.hash);
  });

  it('serves pushed directories from FetchDirectory, and unpacks downloads (here: not an archive)', async () => {
    const { digest: root } = await uploadProto(t.clients, reapi.Directory, reapi.Directory.create({ files: [{ name: 'a', digest: { hash: "0".repeat(64), sizeBytes: 1 } }] }));
    const uri = 'https://example.invalid/repo.git';
    await t.clients.asset.pushDirectory({ uris: [uri], rootDirectoryDigest: toWireDigest(root) });
    const res = await t.clients.asset.fetchDirectory({ uris: [uri] });
    expect(res.status?.code ?? 0).toBe(Status.OK);
    expect(res.rootDirectoryDigest?.hash).toBe(root.hash);
    const other = await t.clients.asset.fetchDirectory({ uris: [`${base}/archive.tar.gz`] });
    expect(other.status?.code).toBe(Status.INVALID_ARGUMENT);
    expect(other.status?.message).toMatch(/not a readable tar archive/);
  });
});

describe('asset index and SRI', () => {
  it('survives a restart (a new index on the same file)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-asset-index-'));
    try {
      const path = join(dir, 'assets.json');
      const d = await digestOf(Buffer.from('x'));
      const first = new AssetIndex(path);
      await first.record(['https://a/x'], '', { kind: 'blob', digest: d, storedAt: 1 }, d.hash);
      const second = new AssetIndex(path);
      expect(second.byUri('blob', 'https://a/x', '')?.digest).toEqual(d);
      expect(second.byChecksum('blob', 'sha256', d.hash)?.digest).toEqual(d);
      expect(second.byUri('directory', 'https://a/x', '')).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads SRI as Bazel writes it', () => {
    const hex = createHash('sha256').update('bazel').digest('hex');
    expect(sriToSha256(sha256ToSri(hex))).toBe(hex);
    expect(sriToSha256(`sha384-xyz ${sha256ToSri(hex)}`)).toBe(hex);
    expect(() => sriToSha256('sha256-tooshort')).toThrow(/not a base64 SHA-256/);
  });
});
