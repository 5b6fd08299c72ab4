// FetchDirectory: archives downloaded from a local HTTP server the test runs,
// unpacked into the CAS as REAPI Directory trees, and unsafe archives refused.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256ToSri } from '../../engine/asset/qualifiers';
import type { BlobDigest } from '../../engine/digest';
import { reapi } from '../../engine/proto';
import { blobResourceName } from '../../engine/reapi/resource-names';
import { tarball, zipArchive } from '../helpers/archives';
import { Status, startTestEngine, type TestEngine } from '../helpers';

let t: TestEngine;
let http: Server;
let base = '';
let work = '';
const bodies = new Map<string, Buffer>();
const hits = new Map<string, number>();

const tool = '#!/bin/sh\necho hi\n';
const text = 'some library text\n'.repeat(100);
const big = randomBytes(5 * 1024 * 1024); // over the in-memory limit: goes through a temp file
const sri = (data: Buffer) => sha256ToSri(createHash('sha256').update(data).digest('hex'));

beforeAll(async () => {
  t = await startTestEngine();
  work = await mkdtemp(join(tmpdir(), 'kiln-fetchdir-'));
  // A package folder like a release tarball: pkg/{bin/tool*, lib/a.txt, lib/b.txt, lib/big.bin, empty/, link → lib/a.txt}
  const pkg = join(work, 'src', 'pkg');
  await mkdir(join(pkg, 'bin'), { recursive: true });
  await mkdir(join(pkg, 'lib'));
  await mkdir(join(pkg, 'empty'));
  await writeFile(join(pkg, 'bin', 'tool'), tool, { mode: 0o755 });
  await writeFile(join(pkg, 'lib', 'a.txt'), text);
  await writeFile(join(pkg, 'lib', 'b.txt'), text);
  await writeFile(join(pkg, 'lib', 'big.bin'), big);
  await symlink('lib/a.txt', join(pkg, 'link'));
  await createTar({ gzip: true, cwd: join(work, 'src'), file: join(work, 'pkg.tgz'), portable: true }, ['pkg']);
  bodies.set('/pkg.tar.gz', await readFile(join(work, 'pkg.tgz')));
  bodies.set('/download?id=1', await readFile(join(work, 'pkg.tgz'))); // no telling suffix: the magic bytes decide
  await createTar({ cwd: join(work, 'src'), file: join(work, 'pkg.tar'), portable: true }, ['pkg']);
  bodies.set('/pkg.tar', await readFile(join(work, 'pkg.tar')));
  bodies.set(
    '/pkg.zip',
    zipArchive([
      { name: 'pkg/' },
      { name: 'pkg/bin/tool', body: tool, mode: 0o100755, deflate: true },
      { name: 'pkg/lib/a.txt', body: text, deflate: true },
      { name: 'pkg/lib/b.txt', body: text },
      { name: 'pkg/lib/big.bin', body: big, deflate: true },
      { name: 'pkg/empty/' },
      { name: 'pkg/link', body: 'lib/a.txt', mode: 0o120777 },
    ]),
  );

  http = createServer((req, res) => {
    const path = req.url ?? '';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const body = bodies.get(path);
    res.statusCode = body ? 200 : 404;
    res.end(body ?? 'not here');
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

afterAll(async () => {
  http?.closeAllConnections();
  await new Promise((resolve) => http?.close(resolve));
  await t?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function readBlob(d: { hash?: string | null; sizeBytes?: unknown }): Promise<Buffer> {
  const digest: BlobDigest = { fn: 'sha256', hash: d.hash ?? '', size: Number(d.sizeBytes) };
  if (digest.size === 0) return Buffer.alloc(0);
  return (await t.clients.byteStream.read({ resourceName: blobResourceName('', digest) })).data;
}

/** The tree under a root Directory as path → description, read back through ByteStream. */
async function listTree(root: { hash?: string | null; sizeBytes?: unknown }, prefix = ''): Promise<Record<string, string>> {
  const dir = reapi.Directory.decode(await readBlob(root));
  const out: Record<string, string> = {};
  const names = [...dir.files.map((f) => f.name), ...dir.directories.map((d) => d.name), ...dir.symlinks.map((s) => s.name)];
  for (const f of dir.files) {
    const body = await readBlob(f.digest!);
    out[prefix + f.name] = `file${f.isExecutable ? '*' : ''} ${createHash('sha256').update(body).digest('hex').slice(0, 12)}`;
  }
  for (const s of dir.symlinks) out[prefix + s.name] = `-> ${s.target}`;
  for (const d of dir.directories) {
    out[`${prefix + d.name}/`] = 'dir';
    Object.assign(out, await listTree(d.digest!, `${prefix + d.name}/`));
  }
  // The spec's canonical form: each list sorted by name.
  const lists: { name?: string | null }[][] = [dir.files, dir.directories, dir.symlinks];
  for (const list of lists) {
    const sorted = list.map((n) => n.name ?? '').sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(list.map((n) => n.name ?? ''), `${prefix || '.'} sorted`).toEqual(sorted);
  }
  expect(new Set(names).size, 'no name twice').toBe(names.length);
  return out;
}

const short = (s: string | Buffer) => createHash('sha256').update(s).digest('hex').slice(0, 12);
const expectedPkg = {
  'bin/': 'dir',
  'bin/tool': `file* ${short(tool)}`,
  'empty/': 'dir',
  'lib/': 'dir',
  'lib/a.txt': `file ${short(text)}`,
  'lib/b.txt': `file ${short(text)}`,
  'lib/big.bin': `file ${short(big)}`,
  link: '-> lib/a.txt',
};

describe('FetchDirectory', () => {
  it('downloads a tar.gz, verifies checksum.sri, unpacks it into the CAS, then answers from the index', async () => {
    const uri = `${base}/pkg.tar.gz`;
    const qualifiers = [{ name: 'checksum.sri', value: sri(bodies.get('/pkg.tar.gz')!) }];
    const events: { uri: string; outcome: string; bytes?: number }[] = [];
    t.engine.events.on('asset.fetched', (e) => events.push(e));
    const res = await t.clients.asset.fetchDirectory({ uris: [uri], qualifiers });
    expect(res.status?.code ?? 0, res.status?.message ?? '').toBe(Status.OK);
    expect(res.uri).toBe(uri);
    const tree = await listTree(res.rootDirectoryDigest!);
    expect(tree).toEqual(Object.fromEntries([['pkg/', 'dir'], ...Object.entries(expectedPkg).map(([k, v]) => [`pkg/${k}`, v])]));

    const again = await t.clients.asset.fetchDirectory({ uris: [uri], qualifiers });
    expect(again.rootDirectoryDigest?.hash).toBe(res.rootDirectoryDigest?.hash);
    // By checksum from a URL that is down: the same tree, no download.
    const elsewhere = await t.clients.asset.fetchDirectory({ uris: [`${base}/gone.tgz`], qualifiers });
    expect(elsewhere.rootDirectoryDigest?.hash).toBe(res.rootDirectoryDigest?.hash);
    expect(hits.get('/pkg.tar.gz')).toBe(1);
    expect(hits.get('/gone.tgz')).toBeUndefined();
    // The dashboard's fetch log: the archive's size for the download, then two hits.
    expect(events.slice(0, 3).map((e) => [e.outcome, e.bytes === bodies.get('/pkg.tar.gz')!.length])).toEqual([['downloaded', true], ['hit', false], ['hit', false]]);
  });

  it('unpacks tar, tar.gz and zip of the same folder to the same Directory digest, with the directory qualifier as strip prefix', async () => {
    const roots: reapi.Digest[] = [];
    for (const [path, extra] of [
      ['/pkg.tar.gz', []],
      ['/pkg.tar', []],
      ['/pkg.zip', []],
      ['/download?id=1', []],
      ['/pkg.zip', [{ name: 'archive.type', value: 'zip' }]],
      ['/pkg.tar', [{ name: 'resource_type', value: 'application/x-tar' }]],
    ] as const) {
      const res = await t.clients.asset.fetchDirectory({ uris: [base + path], qualifiers: [{ name: 'directory', value: 'pkg' }, ...extra] });
      expect(res.status?.code ?? 0, `${path}: ${res.status?.message}`).toBe(Status.OK);
      roots.push(res.rootDirectoryDigest as reapi.Digest);
    }
    expect(new Set(roots.map((d) => d.hash)).size).toBe(1);
    expect(await listTree(roots[0]!)).toEqual(expectedPkg);

    const sub = await t.clients.asset.fetchDirectory({ uris: [`${base}/pkg.zip`], qualifiers: [{ name: 'directory', value: 'pkg/lib/' }] });
    expect(Object.keys(await listTree(sub.rootDirectoryDigest!))).toEqual(['a.txt', 'b.txt', 'big.bin']);
    const none = await t.clients.asset.fetchDirectory({ uris: [`${base}/pkg.zip`], qualifiers: [{ name: 'directory', value: 'nope' }] });
    expect(none.status?.code).toBe(Status.INVALID_ARGUMENT);
    expect(none.status?.message).toMatch(/nothing under the directory "nope"/);
  });

  const refused: [string, Buffer, RegExp][] = [
    ['a ".." path', tarball([{ name: 'ok.txt', body: 'x' }, { name: '../evil.txt', body: 'x' }]), /contains "\.\."/],
    ['an absolute path', tarball([{ name: '/etc/evil', body: 'x' }]), /absolute path/],
    ['a symlink climbing out', tarball([{ name: 'a/link', type: '2', linkname: '../../outside' }]), /outside the unpacked folder/],
    ['an absolute symlink', tarball([{ name: 'link', type: '2', linkname: '/etc/passwd' }]), /absolute path "\/etc\/passwd"/],
    ['a symlink with ".." after a name', tarball([{ name: 'link', type: '2', linkname: 'a/../../x' }]), /after a name/],
    ['an entry below a symlink', tarball([{ name: 'd', type: '2', linkname: '.' }, { name: 'd/x', body: 'x' }]), /is a file or symlink/],
    ['a hard link to nothing', tarball([{ name: 'h', type: '1', linkname: 'missing' }]), /hard link "h"/],
    ['a zip with a ".." path', zipArchive([{ name: '../evil', body: 'x' }]), /contains "\.\."/],
    ['a zip with a wrong CRC-32', zipArchive([{ name: 'a', body: 'hello', deflate: true, badCrc: true }]), /CRC-32/],
    ['a cut tar.gz', Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]), /not a readable tar archive/],
    ['a file that is no archive', Buffer.from('hello, I am text'), /cannot tell what kind of archive/],
  ];
  it.each(refused)('refuses %s with INVALID_ARGUMENT, remembering nothing', async (label, body, message) => {
    const path = `/bad-${refused.findIndex(([l]) => l === label)}`;
    bodies.set(path, body);
    for (let round = 1; round <= 2; round++) {
      const res = await t.clients.asset.fetchDirectory({ uris: [base + path] });
      expect(res.status?.code, res.status?.message ?? '').toBe(Status.INVALID_ARGUMENT);
      expect(res.status?.message).toMatch(message);
      expect(hits.get(path), 'not remembered: downloaded again').toBe(round);
    }
  });

  it('refuses an unknown archive.type as INVALID_ARGUMENT, naming the types it unpacks', async () => {
    const res = await t.clients.asset.fetchDirectory({ uris: [`${base}/pkg.tar`], qualifiers: [{ name: 'archive.type', value: 'rar' }] });
    expect(res.status?.code).toBe(Status.INVALID_ARGUMENT);
    expect(res.status?.message).toMatch(/"rar" is not an archive type Kiln unpacks \(tar, tar.gz \(tgz\) and zip\)/);
  });

  it('unpacks an archive FetchBlob already stored, without downloading it again (the origin may be down)', async () => {
    const body = tarball([{ name: 'only/file.txt', body: 'from the CAS' }]);
    bodies.set('/stored.tar', body);
    const qualifiers = [{ name: 'checksum.sri', value: sri(body) }];
    const blob = await t.clients.asset.fetchBlob({ uris: [`${base}/stored.tar`], qualifiers });
    expect(blob.status?.code ?? 0).toBe(Status.OK);
    bodies.delete('/stored.tar'); // the origin forgets it
    const dir = await t.clients.asset.fetchDirectory({ uris: [`${base}/stored.tar`], qualifiers });
    expect(dir.status?.code ?? 0, dir.status?.message ?? '').toBe(Status.OK);
    expect(await listTree(dir.rootDirectoryDigest!)).toEqual({ 'only/': 'dir', 'only/file.txt': `file ${short('from the CAS')}` });
    expect(hits.get('/stored.tar')).toBe(1);
  });

  it('serves a pushed directory by its checksum.sri from another URL', async () => {
    const pushedFrom = `${base}/pushed.tar`;
    const qualifiers = [{ name: 'checksum.sri', value: sri(Buffer.from('the pushed archive')) }];
    const first = await t.clients.asset.fetchDirectory({ uris: [`${base}/pkg.zip`], qualifiers: [{ name: 'directory', value: 'pkg' }] });
    await t.clients.asset.pushDirectory({ uris: [pushedFrom], qualifiers, rootDirectoryDigest: first.rootDirectoryDigest });
    const res = await t.clients.asset.fetchDirectory({ uris: [`${base}/not-there.tar`], qualifiers });
    expect(res.status?.code ?? 0, res.status?.message ?? '').toBe(Status.OK);
    expect(res.rootDirectoryDigest?.hash).toBe(first.rootDirectoryDigest?.hash);
    expect(hits.get('/not-there.tar')).toBeUndefined();
  });

  it('answers ABORTED for a checksum mismatch, unpacking nothing', async () => {
    const res = await t.clients.asset.fetchDirectory({ uris: [`${base}/pkg.tar`], qualifiers: [{ name: 'checksum.sri', value: sri(Buffer.from('other')) }] });
    expect(res.status?.code).toBe(Status.ABORTED);
  });
});
