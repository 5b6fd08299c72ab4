// peers: auto across network namespaces: Kiln B in LAN mode in one namespace
// (TLS, tokens, mDNS), Kiln A with one slot and `--peers auto` in the other,
// holding a token B made. A finds B by mDNS and a burst sent to A runs on
// both, each output right. Needs root and iproute2 (skipped otherwise, saying so).
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenStore } from '../../engine/auth/tokens';
import type { PeerStatus } from '../../engine/common/api-types';
import { tokenStorePath } from '../../engine/lan/access';
import { createNetnsPair, netnsAvailable, waitForLine, type NetnsPair } from '../lan/netns';

const canRun = netnsAvailable();
const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'engine', 'cli.ts');
const node = [process.execPath, '--import', 'tsx'];

describe.skipIf(!canRun)(`peers: auto across network namespaces${canRun ? '' : ' (skipped: needs root and iproute2 for network namespaces)'}`, () => {
  let pair: NetnsPair;
  const children: ChildProcess[] = [];
  const dirA = mkdtempSync(join(tmpdir(), 'kiln-netns-peer-a-'));
  const dirB = mkdtempSync(join(tmpdir(), 'kiln-netns-peer-b-'));
  let grpcA = '';
  let httpA = '';
  let clientToken = '';

  const serve = async (ns: string, host: string, dir: string, extra: string[]) => {
    const child = pair.spawnIn(ns, [...node, CLI, 'serve', '--host', host, '--port', '0', '--http-port', '0', '--data-dir', dir, '--sandbox', 'off', '--mode', 'normal', ...extra]);
    children.push(child);
    const [, grpcUrl, httpUrl] = await waitForLine(child, /kiln listening grpcs:\/\/(\S+)\s+kiln dashboard (\S+?)\/?\s/m, 120_000);
    return { grpcUrl: grpcUrl!, httpUrl: httpUrl! };
  };

  beforeAll(async () => {
    pair = createNetnsPair();
    const peerToken = new TokenStore(tokenStorePath(dirB)).add('kiln-a');
    clientToken = new TokenStore(tokenStorePath(dirA)).add('test-client');
    await serve(pair.server.ns, pair.server.address, dirB, ['--concurrency', '2']);
    const a = await serve(pair.client.ns, pair.client.address, dirA, [
      '--concurrency', '1',
      '--peers', 'auto',
      '--peer-token', peerToken,
      '--peer-tls-ca', join(dirB, 'tls', 'ca.pem'),
    ]);
    grpcA = a.grpcUrl;
    httpA = a.httpUrl;
  }, 240_000);

  afterAll(async () => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }),
    );
    pair?.destroy();
    rmSync(dirA, { recursive: true, force: true });
    rmSync(dirB, { recursive: true, force: true });
  });

  it('A finds B by mDNS and a burst runs on both with the right outputs', () => {
    const out = pair.execIn(pair.client.ns, [...node, join(__dirname, 'fixtures', 'burst.ts'), grpcA, join(dirA, 'tls', 'ca.pem'), clientToken, httpA, '8']);
    const result = JSON.parse(out.trim().split('\n').pop()!) as { failures: string[]; ranOn: Record<string, number>; peers: PeerStatus[] };
    expect(result.failures).toEqual([]);
    expect(result.peers).toHaveLength(1);
    expect(result.peers[0]).toMatchObject({ source: 'mdns', reachable: true, url: expect.stringMatching(new RegExp(`^grpcs://${pair.server.address.replace(/\./g, '\\.')}:\\d+$`)) });
    const peerName = result.peers[0]!.name;
    expect(Object.keys(result.ranOn).sort()).toEqual(['local', peerName].sort());
  }, 180_000);
});
