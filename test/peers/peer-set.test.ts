// peers: auto: the Kilns mDNS finds become peers (never this Kiln itself), with
// peer-token, and leave when they stop advertising; a listed peer's status URL
// defaults to its gRPC port + 1.
import { describe, expect, it } from 'vitest';
import type { DiscoveredKiln } from '../../engine/lan/discovery';
import { PeerSet } from '../../engine/peers/peer-set';
import { MemoryBlobStore } from '../../engine/store/memory-store';

const kiln = (name: string, address: string, grpcPort: number, httpPort?: number): DiscoveredKiln => ({
  name,
  host: `${name}.local`,
  addresses: [address],
  grpcPort,
  httpPort,
  tls: true,
  endpoint: `grpcs://${address}:${grpcPort}`,
});

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!check()) throw new Error(`never happened: ${what}`);
}

describe('PeerSet', () => {
  it('with auto, takes the Kilns mDNS finds but itself, reads them with peer-token, and drops the ones that left', async () => {
    let found = [kiln('self', '127.0.0.1', 8980, 8981), kiln('desk-2', '10.9.0.2', 8980, 9000), kiln('desk-3', '10.9.0.3', 7000)];
    const reads: { url: string; token?: string }[] = [];
    const set = new PeerSet({
      config: { peers: 'auto', peerToken: 'office-token', host: '0.0.0.0' },
      store: new MemoryBlobStore(),
      clock: { now: () => 0 },
      ownGrpcPort: () => 8980,
      pollMs: 10_000,
      discoverMs: 20,
      discover: async () => found,
      readStatus: async (url, opts) => {
        reads.push({ url, token: opts.token });
        return { report: { executing: true, concurrency: 2, running: 0 }, roundTripMs: 1 };
      },
    });
    try {
      await eventually(() => set.targets().length === 2, 'two peers found');
      expect(set.status().map((p) => [p.name, p.url, p.source])).toEqual([
        ['peer:desk-2', 'grpcs://10.9.0.2:8980', 'mdns'],
        ['peer:desk-3', 'grpcs://10.9.0.3:7000', 'mdns'],
      ]);
      await eventually(() => reads.length >= 2, 'both peers read');
      // The advertised dashboard port when there is one, else the gRPC port + 1; always with peer-token.
      expect(reads.map((r) => r.url).sort()).toEqual(['https://10.9.0.2:9000', 'https://10.9.0.3:7001']);
      expect(reads.every((r) => r.token === 'office-token')).toBe(true);
      await eventually(() => set.slots() === 4, 'both offer two slots');

      found = [kiln('desk-3', '10.9.0.3', 7000)];
      await eventually(() => set.targets().length === 1, 'desk-2 dropped');
      expect(set.targets()[0]!.name).toBe('peer:desk-3');
    } finally {
      set.close();
    }
  });

  it('gives listed peers their own token (else peer-token) and the status URL at gRPC port + 1 unless told', async () => {
    const reads: [string, string | undefined][] = [];
    const set = new PeerSet({
      config: {
        peers: [{ url: 'grpc://10.9.0.2:8980', token: 'own' }, { url: 'grpcs://10.9.0.3:8980', statusUrl: 'https://10.9.0.3:9999', name: 'desk-3' }],
        peerToken: 'fallback',
        host: '127.0.0.1',
      },
      store: new MemoryBlobStore(),
      clock: { now: () => 0 },
      ownGrpcPort: () => 1,
      pollMs: 0,
      readStatus: async (url, opts) => {
        reads.push([url, opts.token]);
        throw new Error('refused');
      },
    });
    try {
      expect(set.status().map((p) => [p.name, p.source, p.reachable, p.slots])).toEqual([
        ['peer:10.9.0.2:8980', 'config', undefined, 0],
        ['peer:desk-3', 'config', undefined, 0],
      ]);
      await Promise.all(set.targets().map((p) => p.refresh()));
      expect(reads).toEqual([
        ['http://10.9.0.2:8981', 'own'],
        ['https://10.9.0.3:9999', 'fallback'],
      ]);
      expect(set.status().every((p) => p.reachable === false && p.problem === 'refused')).toBe(true);
    } finally {
      set.close();
    }
  });
});
