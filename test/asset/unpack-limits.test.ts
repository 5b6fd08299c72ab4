// FetchDirectory's bounds: entries, unpacked bytes and depth, each refused with
// the outcome the Fetch service turns into RESOURCE_EXHAUSTED or INVALID_ARGUMENT.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AssetFetcher, type FetchOutcome } from '../../engine/asset/asset-fetcher';
import { AssetIndex } from '../../engine/asset/asset-index';
import { parseQualifiers } from '../../engine/asset/qualifiers';
import { ManualClock } from '../../engine/clock';
import { DIGEST_FUNCTIONS } from '../../engine/digest';
import { EventBus } from '../../engine/events/event-bus';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { tarball, zipArchive } from '../helpers/archives';

let http: Server;
let base = '';
let tmpDir = '';
const bodies = new Map<string, Buffer>();

beforeAll(async () => {
  tmpDir = await mkdtemp(join(tmpdir(), 'kiln-unpack-'));
  http = createServer((req, res) => {
    const body = bodies.get(req.url ?? '');
    res.statusCode = body ? 200 : 404;
    res.end(body ?? '');
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

afterAll(async () => {
  http?.closeAllConnections();
  await new Promise((resolve) => http?.close(resolve));
  if (tmpDir) await rm(tmpDir, { recursive: true, force: true });
});

async function fetchWithLimits(path: string, body: Buffer): Promise<{ outcome: FetchOutcome; store: MemoryBlobStore }> {
  bodies.set(path, body);
  const store = new MemoryBlobStore();
  const fetcher = new AssetFetcher({
    store,
    index: new AssetIndex(),
    tmpDir,
    maxDownloadBytes: 1024 * 1024,
    defaultTimeoutMs: 30_000,
    maxTimeoutMs: 30_000,
    unpackLimits: { maxEntries: 10, maxBytes: 1000, maxDepth: 4 },
    events: new EventBus(),
    clock: new ManualClock(),
  });
  const fn = DIGEST_FUNCTIONS.sha256;
  return { outcome: await fetcher.fetchDirectory({ uris: [base + path], qualifiers: parseQualifiers([], fn), fn }), store };
}

const files = (n: number, size = 1) => Array.from({ length: n }, (_, i) => ({ name: `f${i}`, body: Buffer.alloc(size, i) }));

it('accepts an archive within every bound', async () => {
  const { outcome } = await fetchWithLimits('/fits.tar', tarball([...files(9, 100), { name: 'a/b/c/d', body: 'deep enough' }]));
  expect(outcome.ok, JSON.stringify(outcome)).toBe(true);
});

it('refuses more entries than the limit as archive-too-large', async () => {
  const { outcome } = await fetchWithLimits('/many.zip', zipArchive(files(11)));
  expect(outcome).toMatchObject({ ok: false, failure: 'archive-too-large' });
  expect(outcome.ok || outcome.message).toMatch(/more than 10 entries/);
});

it('refuses more unpacked bytes than the limit as archive-too-large, before reading them', async () => {
  const { outcome, store } = await fetchWithLimits('/big.tar', tarball([{ name: 'small', body: Buffer.alloc(10, 1) }, { name: 'big', body: Buffer.alloc(1200, 2) }]));
  expect(outcome).toMatchObject({ ok: false, failure: 'archive-too-large' });
  expect(outcome.ok || outcome.message).toMatch(/more than 1000 bytes/);
  expect(store.stats().blobs, 'only the small file before it').toBe(1);
});

it('refuses a zip entry that inflates beyond its recorded size (a zip bomb lying about itself)', async () => {
  const zip = zipArchive([{ name: 'bomb', body: Buffer.alloc(900), deflate: true }]);
  zip.writeUInt32LE(100, zip.length - 22 - 46 - 4 + 24); // the central directory's uncompressed size: 100
  const { outcome } = await fetchWithLimits('/liar.zip', zip);
  expect(outcome).toMatchObject({ ok: false, failure: 'bad-archive' });
  expect(outcome.ok || outcome.message).toMatch(/more than its recorded 100 bytes/);
});

it('refuses paths deeper than the limit as bad-archive', async () => {
  const { outcome } = await fetchWithLimits('/deep.tar', tarball([{ name: 'a/b/c/d/e/f', body: 'too deep' }]));
  expect(outcome).toMatchObject({ ok: false, failure: 'bad-archive' });
  expect(outcome.ok || outcome.message).toMatch(/6 levels deep; Kiln unpacks at most 4/);
});
