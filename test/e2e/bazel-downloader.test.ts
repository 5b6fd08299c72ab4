// Bazel's remote downloader pointed at Kiln (--experimental_remote_downloader):
// an http_archive served by a local HTTP server is fetched through Kiln's Remote
// Asset API; with the HTTP server stopped and Bazel's repository cache cleared,
// the next build still gets the archive, from Kiln's CAS.
//
// Needs Bazel 4.2.3 (Debian's bazel-bootstrap, /usr/bin/bazel-4 or
// $KILN_TEST_BAZEL4) and `tar`; skipped, and saying so, when Bazel is missing.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KilnEvent } from '../../engine/events/event-bus';
import { BazelWorkspace, findBazel4, startKiln, type RunningKiln } from './harness';

const bazel = findBazel4();
const LONG = 10 * 60_000;

describe.skipIf(!bazel)(`Bazel 4.2.3 with --experimental_remote_downloader${bazel ? '' : ' (skipped: Bazel 4.2.3 is not installed here; .ci/run installs it)'}`, () => {
  let kiln: RunningKiln;
  let ws: BazelWorkspace;
  let http: Server;
  let archive: Buffer;
  let served = 0;
  const fetches: Extract<KilnEvent, { type: 'asset.fetched' }>[] = [];

  beforeAll(async () => {
    kiln = await startKiln();
    kiln.engine.events.on('asset.fetched', (e) => fetches.push(e));
    ws = await BazelWorkspace.create(bazel!, 'downloader');

    // The archive: one file and nothing else (its BUILD comes from build_file_content).
    const src = join(ws.root, 'archive-src', 'ext-1.0');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'data.txt'), 'fetched through kiln\n');
    const tarball = join(ws.root, 'ext-1.0.tar.gz');
    const tar = spawnSync('tar', ['-czf', tarball, '-C', join(ws.root, 'archive-src'), 'ext-1.0']);
    if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr}`);
    archive = await readFile(tarball);

    http = createServer((req, res) => {
      if (req.url !== '/ext-1.0.tar.gz') {
        res.statusCode = 404;
        return res.end();
      }
      served++;
      res.end(archive);
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as AddressInfo).port;
    await appendFile(
      join(ws.dir, 'WORKSPACE'),
      [
        'load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")',
        'http_archive(',
        '    name = "ext",',
        `    urls = ["http://127.0.0.1:${port}/ext-1.0.tar.gz"],`,
        `    sha256 = "${createHash('sha256').update(archive).digest('hex')}",`,
        '    strip_prefix = "ext-1.0",',
        '    build_file_content = "exports_files([\\"data.txt\\"])",',
        ')',
        '',
      ].join('\n'),
    );
  }, LONG);

  afterAll(async () => {
    http?.closeAllConnections();
    await new Promise((resolve) => (http?.listening ? http.close(resolve) : resolve(undefined)));
    await ws?.dispose();
    await kiln?.stop();
  }, LONG);

  // Bazel 4 uses the remote downloader only together with a gRPC remote cache.
  const flags = () => [
    `--experimental_remote_downloader=${kiln.url}`,
    `--remote_cache=${kiln.url}`,
    `--repository_cache=${join(ws.root, 'repository-cache')}`,
  ];

  it('downloads through Kiln, then serves the archive from Kiln when the origin is gone', async () => {
    const first = await ws.build('build', flags(), ['//:from_archive']);
    expect(first.code, first.output).toBe(0);
    expect(await ws.readOutput('from_archive.txt')).toBe('fetched through kiln\n');
    expect(served).toBe(1); // Kiln fetched it; Bazel did not go around it
    expect(fetches.map((f) => f.outcome)).toEqual(['downloaded']);
    expect(fetches[0]!.bytes).toBe(archive.length);

    // Origin gone, Bazel's own copies gone: only Kiln has the archive now.
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
    expect((await ws.run(['clean', '--expunge', '--color=no', '--curses=no'])).code).toBe(0);
    await rm(join(ws.root, 'repository-cache'), { recursive: true, force: true });

    const second = await ws.build('build', flags(), ['//:from_archive']);
    expect(second.code, second.output).toBe(0);
    expect(await ws.readOutput('from_archive.txt')).toBe('fetched through kiln\n');
    expect(fetches.map((f) => f.outcome)).toEqual(['downloaded', 'hit']);
  }, LONG);
});
