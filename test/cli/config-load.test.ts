import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseSize } from '../../engine/config-load';

describe('parseSize', () => {
  it.each([
    ['20GiB', 20 * 1024 ** 3],
    ['500MB', 500e6],
    ['1.5TiB', 1.5 * 1024 ** 4],
    ['1048576', 1048576],
    [4096, 4096],
    ['64 kib', 65536],
  ])('%s → %d bytes', (text, bytes) => expect(parseSize(text)).toBe(bytes));

  it.each(['', '20XB', '-1GB', '0', 'GB', '1e9', true])('rejects %j', (text) => {
    expect(() => parseSize(text)).toThrow(ConfigError);
  });
});

describe('loadConfig', () => {
  it('applies file then flags, resolving paths against their origin', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-config-'));
    try {
      const file = join(dir, 'k.yaml');
      await writeFile(file, 'host: 0.0.0.0\nport: 9000\nqueue-size: 5\ndata-dir: data\n');
      const c = loadConfig({ configFile: file, flags: { port: '0', concurrency: '7' }, cwd: '/somewhere' });
      expect(c).toMatchObject({ host: '0.0.0.0', port: 0, queueSize: 5, concurrency: 7, dataDir: join(dir, 'data') });
      expect(loadConfig({ flags: { 'data-dir': 'rel' }, cwd: '/base' }).dataDir).toBe('/base/rel');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads the Remote Asset download limit and timeout', () => {
    const c = loadConfig({ flags: { 'asset-max-size': '512MiB', 'asset-timeout': '90' } });
    expect(c).toMatchObject({ assetMaxDownloadBytes: 512 * 1024 ** 2, assetDefaultTimeoutMs: 90_000 });
    expect(() => loadConfig({ flags: { 'asset-timeout': '0' } })).toThrow(/asset-timeout:/);
  });

  it('reads the invocation history budget', () => {
    expect(loadConfig({ flags: { 'invocation-history': '500', 'invocation-history-days': '30' } })).toMatchObject({
      invocationHistoryMax: 500,
      invocationHistoryDays: 30,
    });
    expect(() => loadConfig({ flags: { 'invocation-history': '5' } })).toThrow(/invocation-history: "5" is not an integer from 10 to 100000/);
    expect(() => loadConfig({ flags: { 'invocation-history-days': '0' } })).toThrow(/invocation-history-days:/);
  });

  it('reports the key and what is allowed', () => {
    expect(() => loadConfig({ flags: { 'queue-size': '0' } })).toThrow(/queue-size: "0" is not an integer from 1/);
    expect(() => loadConfig({ flags: { host: 'a b' } })).toThrow(/host:/);
  });
});

describe('LAN settings', () => {
  const withDir = async (fn: (dir: string) => Promise<void> | void) => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-config-lan-'));
    try {
      await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  it('parses tls, its files, require-token and mdns', () =>
    withDir((dir) => {
      const c = loadConfig({
        flags: { 'data-dir': dir, tls: 'on', 'tls-cert': 'c.pem', 'tls-key': 'k.pem', 'tls-client-ca': 'ca.pem', 'require-token': true, mdns: 'false' },
        cwd: '/etc/kiln',
      });
      expect(c).toMatchObject({ tls: 'on', tlsCertFile: '/etc/kiln/c.pem', tlsKeyFile: '/etc/kiln/k.pem', tlsClientCaFile: '/etc/kiln/ca.pem', requireTokenOnLoopback: true, mdns: false });
      expect(loadConfig({ flags: { 'data-dir': dir } })).toMatchObject({ tls: 'auto', mdns: true, requireTokenOnLoopback: false });
    }));

  it('rejects bad values and combinations with one line each', () =>
    withDir((dir) => {
      expect(() => loadConfig({ flags: { 'data-dir': dir, tls: 'maybe' } })).toThrow(/^tls: "maybe" is not a TLS mode; use auto/);
      expect(() => loadConfig({ flags: { 'data-dir': dir, mdns: 'perhaps' } })).toThrow(/^mdns: "perhaps" is not a switch/);
      expect(() => loadConfig({ flags: { 'data-dir': dir, 'tls-cert': 'c.pem' } })).toThrow(/tls-cert and tls-key go together/);
      expect(() => loadConfig({ flags: { 'data-dir': dir, tls: 'off', 'tls-client-ca': 'ca.pem' } })).toThrow(/tls is off/);
    }));

  it('turns LAN mode on from the saved dashboard switch unless a flag or the config file sets the host', () =>
    withDir(async (dir) => {
      await writeFile(join(dir, 'settings.json'), '{"lan": true}\n');
      expect(loadConfig({ flags: { 'data-dir': dir } }).host).toBe('0.0.0.0');
      expect(loadConfig({ flags: { 'data-dir': dir, host: '127.0.0.1' } }).host).toBe('127.0.0.1');
      const file = join(dir, 'k.yaml');
      await writeFile(file, 'host: 127.0.0.1\n');
      expect(loadConfig({ flags: { 'data-dir': dir }, configFile: file }).host).toBe('127.0.0.1');
      await writeFile(join(dir, 'settings.json'), '{"lan": "yes"}');
      expect(() => loadConfig({ flags: { 'data-dir': dir } })).toThrow(/"lan" must be true or false/);
    }));

  it('uses saved concurrency and cache budget unless a flag or the config file sets that key', () =>
    withDir(async (dir) => {
      await writeFile(join(dir, 'settings.json'), '{"concurrency": 3, "cacheSizeBytes": 134217728}\n');
      expect(loadConfig({ flags: { 'data-dir': dir } })).toMatchObject({ concurrency: 3, cacheSizeBytes: 134217728 });
      expect(loadConfig({ flags: { 'data-dir': dir, concurrency: '5' } })).toMatchObject({ concurrency: 5, cacheSizeBytes: 134217728 });
      const file = join(dir, 'k.yaml');
      await writeFile(file, 'cache-size: 1GiB\n');
      expect(loadConfig({ flags: { 'data-dir': dir }, configFile: file })).toMatchObject({ concurrency: 3, cacheSizeBytes: 1024 ** 3 });
      expect(loadConfig({ flags: { 'data-dir': dir }, savedSettings: false }).cacheSizeBytes).toBe(20 * 1024 ** 3);
      await writeFile(join(dir, 'settings.json'), '{"concurrency": 0}');
      expect(() => loadConfig({ flags: { 'data-dir': dir } })).toThrow(/settings\.json: concurrency must be a whole number/);
    }));
});

describe('settings limits', () => {
  // The same limits apply at start (flags, config file) as live (the dashboard): engine/common/settings-limits.ts.
  it('accepts at start exactly the worker slots the dashboard accepts', () => {
    expect(loadConfig({ flags: { concurrency: '1024' }, savedSettings: false }).concurrency).toBe(1024);
    expect(() => loadConfig({ flags: { concurrency: '1025' }, savedSettings: false })).toThrow(/concurrency: "1025" is not an integer from 1 to 1024/);
    expect(() => loadConfig({ flags: { concurrency: '0' }, savedSettings: false })).toThrow(/concurrency: "0" is not an integer from 1 to 1024/);
  });

  it('refuses a cache budget below 64 MiB at start, as the dashboard does', () => {
    expect(loadConfig({ flags: { 'cache-size': '64MiB' }, savedSettings: false }).cacheSizeBytes).toBe(64 * 1024 ** 2);
    expect(() => loadConfig({ flags: { 'cache-size': '63MiB' }, savedSettings: false })).toThrow(/cache-size: "63MiB" is below the smallest cache budget, 64 MiB/);
  });
});
