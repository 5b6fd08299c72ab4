// The upstream settings: flags (repeatable headers) and config-file keys, and a
// one-line error naming the key for anything wrong.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../engine/config-load';

const noSaved = { savedSettings: false } as const;

describe('upstream settings', () => {
  it('reads the flags, headers repeated', () => {
    const c = loadConfig({
      ...noSaved,
      flags: {
        upstream: 'grpcs://cluster.example:443',
        'upstream-instance': 'main',
        'upstream-header': ['x-buildbuddy-api-key=abc=def', 'X-Team = kiln'],
        'upstream-tls-ca': 'ca.pem',
        placement: 'upstream',
      },
      cwd: '/etc/kiln',
    });
    expect(c).toMatchObject({
      upstream: 'grpcs://cluster.example:443',
      upstreamInstance: 'main',
      upstreamHeaders: { 'x-buildbuddy-api-key': 'abc=def', 'x-team': 'kiln' },
      upstreamTlsCaFile: '/etc/kiln/ca.pem',
      placement: 'upstream',
    });
  });

  it('defaults to no upstream and local-first', () => {
    const c = loadConfig(noSaved);
    expect(c.upstream).toBeUndefined();
    expect(c.placement).toBe('local-first');
    expect(c.upstreamHeaders).toEqual({});
  });

  it('takes the same keys from a config file, headers as a mapping', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-upstream-config-'));
    try {
      const file = join(dir, 'k.yaml');
      await writeFile(file, 'upstream: grpc://10.0.0.5:8980\nplacement: local\nupstream-header:\n  authorization: Bearer t\n');
      const c = loadConfig({ ...noSaved, configFile: file });
      expect(c).toMatchObject({ upstream: 'grpc://10.0.0.5:8980', placement: 'local', upstreamHeaders: { authorization: 'Bearer t' } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [{ upstream: 'http://x:1' }, /upstream: "http:\/\/x:1" is not an upstream address; use grpc:\/\/HOST:PORT/],
    [{ upstream: 'grpc://nohostport' }, /upstream: .* not an upstream address/],
    [{ placement: 'sometimes' }, /placement: "sometimes" is not a placement; use local-first/],
    [{ 'upstream-header': ['novalue'] }, /upstream-header: "novalue" is not a header; use NAME=VALUE/],
    [{ 'upstream-header': ['bad name=1'] }, /upstream-header: .*header name/],
  ])('rejects %j with the key and what it accepts', (flags, message) => {
    expect(() => loadConfig({ ...noSaved, flags })).toThrow(message);
  });
});
