// Three `kiln serve` processes on loopback: A has one slot and B and C as
// peers (each with TLS, --require-token and a token it made for A). A burst of
// actions sent to A runs on all three, every output comes back right, and
// killing C mid-burst fails no action. Heavy (three engines): run it under
// flock /tmp/kiln-heavy.lock.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { TokenStore } from '../../engine/auth/tokens';
import type { ActionSummary, ApiStatus } from '../../engine/common/api-types';
import { DIGEST_FUNCTIONS, toBlobDigest } from '../../engine/digest';
import { tokenStorePath } from '../../engine/lan/access';
import { blobResourceName } from '../../engine/reapi/resource-names';
import { connectClients, type KilnClients } from '../helpers/clients';
import { startTestEngine } from '../helpers/engine';
import { executeRequest, responseOf, uploadAction } from '../execution/harness';
import { capabilitiesStatus, httpsCall } from '../lan/lan-clients';
import { waitForLine } from '../lan/netns';

const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'engine', 'cli.ts');

interface Served {
  name: string;
  dir: string;
  child: ChildProcess;
  grpcPort: number;
  httpUrl: string;
  /** The token this Kiln made for A (B and C only). */
  token?: string;
}

const dirs: string[] = [];
const children: ChildProcess[] = [];
let a: Served;
let b: Served;
let c: Served;
let clients: KilnClients;

async function serve(name: string, args: string[], prepare?: (dir: string) => void): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), `kiln-peer-${name}-`));
  dirs.push(dir);
  prepare?.(dir);
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--port', '0', '--http-port', '0', '--data-dir', dir, '--mode', 'normal', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const [, grpcPort, httpUrl] = await waitForLine(child, /kiln listening grpcs?:\/\/127\.0\.0\.1:(\d+)\s+kiln dashboard (\S+?)\/?\s/m, 120_000);
  return { name, dir, child, grpcPort: Number(grpcPort), httpUrl: httpUrl! };
}

/** A peer: TLS on, a token demanded even on loopback, one token made for A before it starts. */
async function peer(name: string): Promise<Served> {
  let token = '';
  const s = await serve(name, ['--host', '127.0.0.1', '--tls', 'on', '--require-token', '--concurrency', '2'], (dir) => {
    token = new TokenStore(tokenStorePath(dir)).add('kiln-a');
  });
  return { ...s, token };
}

async function peerGet<T>(p: Served, path: string): Promise<T> {
  const reply = await httpsCall(`${p.httpUrl}${path}`, { ca: readFileSync(join(p.dir, 'tls', 'ca.pem'), 'utf8'), token: p.token });
  expect(reply.status).toBe(200);
  return reply.json() as T;
}

async function statusOfA(): Promise<ApiStatus> {
  return (await (await fetch(`${a.httpUrl}/api/status`)).json()) as ApiStatus;
}

async function eventually(check: () => Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`never happened: ${what}`);
}

/** Sends `n` actions to A at once; each sleeps, then writes its own name into out.txt. */
async function burst(tag: string, n: number, sleep: number) {
  const names = Array.from({ length: n }, (_, i) => `${tag}-${i}`);
  const digests = await Promise.all(
    names.map((salt) =>
      uploadAction(clients, { argv: ['/bin/sh', '-c', `sleep ${sleep}; printf %s "$KILN_TEST_SALT" > out.txt`], salt, outputPaths: ['out.txt'] }),
    ),
  );
  const results = digests.map((d) => clients.execution.execute.collect(executeRequest(d)));
  return { names, results };
}

/** Every action succeeded with its own output, served from A's CAS; the operation ids, for A's history. */
async function expectAllCorrect(names: string[], results: Promise<import('../../engine/proto').longrunning.Operation[]>[]): Promise<string[]> {
  const ops = await Promise.all(results);
  const ids: string[] = [];
  for (const [i, list] of ops.entries()) {
    const response = responseOf(list.at(-1)!);
    expect(response.status?.code ?? 0, response.status?.message).toBe(0);
    expect(response.result?.exitCode).toBe(0);
    const out = toBlobDigest(response.result!.outputFiles[0]!.digest, DIGEST_FUNCTIONS.sha256);
    const { data } = await clients.byteStream.read({ resourceName: blobResourceName('', out) });
    expect(data.toString()).toBe(names[i]);
    ids.push(list.at(-1)!.name.replace(/^operations\//, ''));
  }
  return ids;
}

beforeAll(async () => {
  [b, c] = await Promise.all([peer('b'), peer('c')]);
  const config = join(dirs[0]!, '..', `kiln-peer-a-${process.pid}.yaml`);
  const entry = (p: Served) =>
    `  - url: grpcs://127.0.0.1:${p.grpcPort}\n    token: ${p.token}\n    tls-ca: ${join(p.dir, 'tls', 'ca.pem')}\n    status-url: ${p.httpUrl}\n    name: ${p.name}\n`;
  writeFileSync(config, `peers:\n${entry(b)}${entry(c)}`);
  a = await serve('a', ['--host', '127.0.0.1', '--concurrency', '1', '--config', config]);
  rmSync(config);
  clients = connectClients(`127.0.0.1:${a.grpcPort}`);
  // Both peers answered A's status reads and offer their two slots.
  await eventually(async () => (await statusOfA()).peers?.every((p) => p.reachable && p.slots === 2) ?? false, 'A sees both peers with 2 free slots');
}, 240_000);

afterAll(async () => {
  clients?.close();
  await Promise.all(
    children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }),
  );
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('three kiln serve processes, A with one slot and B and C as its peers', () => {
  it('runs a burst on all three, with correct outputs, and each one\'s history shows its share', async () => {
    const { names, results } = await burst('spread', 10, 2);
    const ids = await expectAllCorrect(names, results);

    const ranOn = ids.map((id) => fetch(`${a.httpUrl}/api/actions/${id}`).then((r) => r.json() as Promise<{ ranOn?: string }>));
    const places = new Set((await Promise.all(ranOn)).map((d) => d.ranOn));
    expect(places).toEqual(new Set(['local', 'peer:b', 'peer:c']));
    for (const p of [b, c]) {
      const list = await peerGet<{ items: ActionSummary[] }>(p, '/api/actions');
      expect(list.items.filter((x) => x.outcome === 'success').length, `${p.name}'s history`).toBeGreaterThan(0);
    }
    // The Workers view's data: both peers, reachable, with their round trip.
    const status = await statusOfA();
    expect(status.peers?.map((p) => p.name).sort()).toEqual(['peer:b', 'peer:c']);
    for (const p of status.peers ?? []) expect(p).toMatchObject({ reachable: true, source: 'config', mode: 'normal', executing: true });
  }, 180_000);

  it('fails no action when a peer is killed mid-burst', async () => {
    const { names, results } = await burst('kill', 10, 3);
    await eventually(async () => ((await peerGet<ApiStatus>(c, '/api/status')).running ?? 0) > 0, 'C runs some of the burst', 60_000);
    c.child.kill('SIGKILL');
    await expectAllCorrect(names, results);
    await eventually(async () => (await statusOfA()).peers?.find((p) => p.name === 'peer:c')?.reachable === false, 'A sees C gone', 30_000);
  }, 180_000);

  it('B accepts no call without a token it made', async () => {
    const creds = () => grpc.credentials.createSsl(readFileSync(join(b.dir, 'tls', 'ca.pem')));
    const target = `127.0.0.1:${b.grpcPort}`;
    expect((await capabilitiesStatus(target, creds())).code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await capabilitiesStatus(target, creds(), 'kiln_not-a-token-b-made')).code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await capabilitiesStatus(target, creds(), b.token)).code).toBe(grpc.status.OK);
  }, 60_000);

  it('a Kiln whose token B did not make sends B nothing, says why, and runs the work itself', async () => {
    const before = (await peerGet<{ items: ActionSummary[] }>(b, '/api/actions?limit=200')).items.length;
    const d = await startTestEngine({
      config: {
        concurrency: 1,
        peers: [{ url: `grpcs://127.0.0.1:${b.grpcPort}`, token: 'kiln_not-a-token-b-made', tlsCaFile: join(b.dir, 'tls', 'ca.pem'), statusUrl: b.httpUrl, name: 'b' }],
      },
    });
    try {
      await eventually(async () => d.engine.peers!.status()[0]!.reachable === false, 'D finds B refusing', 30_000);
      expect(d.engine.peers!.status()[0]!.problem).toMatch(/refused our token/);
      const digests = await Promise.all(['x', 'y', 'z'].map((salt) => uploadAction(d.clients, { argv: ['/bin/sh', '-c', 'echo hi'], salt })));
      const ops = await Promise.all(digests.map((dg) => d.clients.execution.execute.collect(executeRequest(dg))));
      for (const list of ops) {
        expect(responseOf(list.at(-1)!).result?.exitCode).toBe(0);
        expect(d.engine.history.get(list.at(-1)!.name.replace(/^operations\//, ''))?.ranOn).toBe('local');
      }
      expect((await peerGet<{ items: ActionSummary[] }>(b, '/api/actions?limit=200')).items.length).toBe(before);
    } finally {
      await d.stop();
    }
  }, 60_000);
});
