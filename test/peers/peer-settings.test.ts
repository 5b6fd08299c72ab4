// The peers settings (--peers, the `peers:` list with per-peer tokens) and what
// a peer's status means for the slots it offers us.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../engine/config';
import { loadConfig } from '../../engine/config-load';
import { Engine } from '../../engine/engine';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { Peer } from '../../engine/peers/peer';
import { offeredSlots, type PeerReport } from '../../engine/peers/peer-status';

const base = { savedSettings: false } as const;

describe('peers settings', () => {
  it('takes a comma-separated list from the flag, with peer-token and peer-tls-ca for all of them', () => {
    const c = loadConfig({ ...base, cwd: '/etc/kiln', flags: { peers: 'grpcs://a.lan:8980, grpcs://b.lan:9000', 'peer-token': 'secret', 'peer-tls-ca': 'office-ca.pem' } });
    expect(c.peers).toEqual([{ url: 'grpcs://a.lan:8980' }, { url: 'grpcs://b.lan:9000' }]);
    expect(c.peerToken).toBe('secret');
    expect(c.peerTlsCaFile).toBe('/etc/kiln/office-ca.pem');
  });

  it('takes per-peer tokens, CAs, status URLs and names from the config file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-peers-config-'));
    try {
      const file = join(dir, 'kiln.yaml');
      await writeFile(file, 'peers:\n  - url: grpcs://desk-2:8980\n    token: t2\n    tls-ca: desk-2-ca.pem\n    name: desk-2\n  - url: grpc://desk-3:7000\n    status-url: http://desk-3:7001\n');
      const c = loadConfig({ ...base, configFile: file });
      expect(c.peers).toEqual([
        { url: 'grpcs://desk-2:8980', token: 't2', tlsCaFile: join(dir, 'desk-2-ca.pem'), name: 'desk-2', statusUrl: undefined },
        { url: 'grpc://desk-3:7000', statusUrl: 'http://desk-3:7001', token: undefined, tlsCaFile: undefined, name: undefined },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [{ peers: 'http://a:1' }, /peers: "http:\/\/a:1" is not a peer address; use grpcs:\/\/HOST:PORT/],
    [{ peers: 'grpcs://a:1,grpcs://a:1' }, /peer grpcs:\/\/a:1 is listed twice/],
    [{ peers: ',' }, /is not a peer list; use auto/],
    [{ peers: 'auto' }, /peers: auto finds peers with mDNS, which runs only in LAN mode/],
  ])('refuses %j with a message naming the fix', (flags, message) => {
    expect(() => loadConfig({ ...base, flags })).toThrow(message);
  });

  it('accepts peers: auto in LAN mode', () => {
    expect(loadConfig({ ...base, flags: { peers: 'auto', host: '0.0.0.0', tls: 'off' } }).peers).toBe('auto');
  });
});

describe('what a peer offers', () => {
  const report = (r: Partial<PeerReport>): PeerReport => ({ executing: true, concurrency: 8, ...r });

  it('offers its slots taking work; half of them in polite mode; none when paused or off', () => {
    const farm = { mode: 'normal', slots: 6, maxSlots: 8, reason: '', summary: '', background: false } as const;
    expect(offeredSlots(report({ farm }))).toBe(6);
    expect(offeredSlots(report({ farm: { ...farm, mode: 'polite', slots: 3 } }))).toBe(1);
    expect(offeredSlots(report({ farm: { ...farm, paused: { since: 1 } } }))).toBe(0);
    expect(offeredSlots(report({ farm, executing: false }))).toBe(0);
    expect(offeredSlots(report({}))).toBe(8);
  });

  it('counts what others run there against the room it offers', async () => {
    let running = 3;
    const peer = new Peer({
      name: 'p',
      url: 'grpc://127.0.0.1:1',
      statusUrl: 'http://127.0.0.1:2',
      source: 'config',
      store: new MemoryBlobStore(),
      clock: { now: () => 0 },
      pollMs: 0,
      readStatus: async () => ({ report: report({ concurrency: 4, running }), roundTripMs: 3 }),
    });
    try {
      expect(peer.room()).toBe(0); // nothing read yet
      await peer.refresh();
      expect(peer.room()).toBe(1);
      expect(peer.status()).toMatchObject({ name: 'peer:p', reachable: true, slots: 1, running: 0, roundTripMs: 3 });
      running = 4;
      await peer.refresh();
      expect(peer.room()).toBe(0);
    } finally {
      peer.close();
    }
  });

  it('is unreachable, offering nothing, while its status cannot be read', async () => {
    const peer = new Peer({
      name: 'p',
      url: 'grpc://127.0.0.1:1',
      statusUrl: 'http://127.0.0.1:2',
      source: 'config',
      store: new MemoryBlobStore(),
      clock: { now: () => 0 },
      pollMs: 0,
      readStatus: async () => {
        throw new Error('status http://127.0.0.1:2: it refused our token');
      },
    });
    try {
      await peer.refresh();
      expect(peer.room()).toBe(0);
      expect(peer.status()).toMatchObject({ reachable: false, problem: /refused our token/ });
    } finally {
      peer.close();
    }
  });
});

describe('starting with peers', () => {
  it('refuses to start, naming the file, when a peer CA cannot be read, and leaves the data folder usable', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kiln-peers-start-'));
    try {
      const config = { ...defaultConfig(), port: 0, httpPort: 0, dataDir, peers: [{ url: 'grpcs://127.0.0.1:1', tlsCaFile: join(dataDir, 'missing-ca.pem') }] };
      await expect(Engine.start({ config })).rejects.toThrow(/peers: cannot read the CA file .*missing-ca\.pem/);
      // The folder's lock was released: a second start on it works.
      const engine = await Engine.start({ config: { ...config, peers: undefined } });
      await engine.stop({ drainMs: 0 });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
