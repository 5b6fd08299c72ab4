// LAN mode as another machine sees it: `kiln serve --host <veth address>` in one
// network namespace of the test's own, Bazel's side in the other. Nothing leaves
// the pair, and both namespaces are removed at the end.
import * as grpc from '@grpc/grpc-js';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetnsPair, netnsAvailable, waitForLine, type NetnsPair } from './netns';

const canRun = netnsAvailable();
const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'engine', 'cli.ts');
const node = [process.execPath, '--import', 'tsx'];

describe.skipIf(!canRun)('LAN mode across network namespaces (needs root and iproute2)', () => {
  let pair: NetnsPair;
  let server: ChildProcess | undefined;
  let endpoint = '';
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-netns-'));
  const caFile = join(dataDir, 'tls', 'ca.pem');

  beforeAll(async () => {
    pair = createNetnsPair();
    server = pair.spawnIn(pair.server.ns, [...node, CLI, 'serve', '--host', pair.server.address, '--port', '0', '--http-port', '0', '--data-dir', dataDir]);
    const [, url] = await waitForLine(server, /^kiln listening (grpcs:\/\/\S+)$/m, 120_000);
    endpoint = url;
  }, 180_000);

  afterAll(async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server!.once('exit', r));
    }
    pair?.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const callFromClient = (token?: string) => {
    const target = endpoint.replace('grpcs://', '');
    const out = pair.execIn(pair.client.ns, [...node, join(__dirname, 'fixtures', 'grpc-call.ts'), target, caFile, ...(token ? [token] : [])]);
    return JSON.parse(out.trim().split('\n').pop()!) as { code: grpc.status; details: string };
  };

  it('listens with TLS on the veth address and refuses a caller without a token', () => {
    expect(endpoint).toMatch(new RegExp(`^grpcs://${pair.server.address.replace(/\./g, '\\.')}:\\d+$`));
    const refused = callFromClient();
    expect(refused.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(refused.details).toMatch(/requires an access token/);
  }, 120_000);

  it('serves a caller with a token made by kiln token add', () => {
    const token = execFileSync(node[0], [...node.slice(1), CLI, 'token', 'add', 'other-machine', '--data-dir', dataDir], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
    // The engine re-reads tokens.json at most once a second: allow a few tries.
    let code = callFromClient(token).code;
    for (let i = 0; i < 5 && code !== grpc.status.OK; i++) code = callFromClient(token).code;
    expect(code).toBe(grpc.status.OK);
  }, 120_000);

  it('is found by kiln discover from the other namespace', () => {
    const out = pair.execIn(pair.client.ns, [...node, CLI, 'discover', '--timeout', '5s', '--json']);
    const found = JSON.parse(out.trim().split('\n').pop()!) as { endpoint: string; tls: boolean; httpPort?: number }[];
    expect(found.map((k) => k.endpoint)).toContain(endpoint);
    expect(found.find((k) => k.endpoint === endpoint)).toMatchObject({ tls: true, httpPort: expect.any(Number) });
  }, 120_000);

  it('stops cleanly on SIGTERM, advertisement included', async () => {
    const exited = new Promise<number | null>((r) => server!.once('exit', (code) => r(code)));
    server!.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 60_000);
});
