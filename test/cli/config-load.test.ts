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

  it('reports the key and what is allowed', () => {
    expect(() => loadConfig({ flags: { 'queue-size': '0' } })).toThrow(/queue-size: "0" is not an integer from 1/);
    expect(() => loadConfig({ flags: { host: 'a b' } })).toThrow(/host:/);
  });
});
