import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AccessPolicy } from '../../engine/auth/access-policy';
import { isLoopbackAddress, peerHost } from '../../engine/common/loopback';
import { bearerToken, TokenStore } from '../../engine/auth/tokens';

const tmp = () => join(mkdtempSync(join(tmpdir(), 'kiln-tokens-')), 'tokens.json');

describe('TokenStore', () => {
  it('stores only hashes, verifies, lists and revokes', () => {
    const file = tmp();
    const store = new TokenStore(file);
    const token = store.add('ci-runner');
    expect(token).toMatch(/^kiln_[A-Za-z0-9_-]{43}$/);
    const onDisk = readFileSync(file, 'utf8');
    expect(onDisk).not.toContain(token);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(store.verify(token)).toBe('ci-runner');
    expect(store.verify(token + 'x')).toBeUndefined();
    expect(store.list().map((t) => t.name)).toEqual(['ci-runner']);
    expect(() => store.add('ci-runner')).toThrow(/exists already/);
    expect(() => store.add('bad name')).toThrow(/not allowed/);
    expect(store.revoke('ci-runner')).toBe(true);
    expect(store.revoke('ci-runner')).toBe(false);
    expect(store.verify(token)).toBeUndefined();
  });

  it('a revoke by another process (the CLI) takes effect in the running engine', () => {
    const file = tmp();
    let now = 1_000_000;
    const engineSide = new TokenStore(file, () => now);
    const cliSide = new TokenStore(file);
    const token = cliSide.add('laptop');
    now += 1500;
    expect(engineSide.verify(token)).toBe('laptop');
    cliSide.revoke('laptop');
    now += 1500;
    expect(engineSide.verify(token)).toBeUndefined();
  });

  it('parses bearer headers strictly', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer   abc ')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe('peer addresses', () => {
  it('recognises loopback in the forms grpc-js and http report', () => {
    for (const p of ['ipv4:127.0.0.1:5000', 'ipv6:[::1]:5000', '::ffff:127.0.0.1', '127.8.9.10', 'unix:/tmp/s']) {
      expect(isLoopbackAddress(p), p).toBe(true);
    }
    for (const p of ['ipv4:10.0.0.2:5000', 'ipv6:[fe80::1]:1', '192.168.1.4', '::ffff:10.1.1.1', '0.0.0.0']) {
      expect(isLoopbackAddress(p), p).toBe(false);
    }
    expect(peerHost('ipv4:10.1.2.3:443')).toBe('10.1.2.3');
  });
});

describe('AccessPolicy', () => {
  it('trusts loopback, demands a valid token from anyone else', () => {
    const tokens = new TokenStore(tmp());
    const good = tokens.add('dev');
    const policy = new AccessPolicy({ tokens });
    expect(policy.check({ peer: 'ipv4:127.0.0.1:1' }).allowed).toBe(true);
    const missing = policy.check({ peer: 'ipv4:10.0.0.5:1' });
    expect(missing).toMatchObject({ allowed: false });
    expect(!missing.allowed && missing.reason).toMatch(/--remote_header=authorization/);
    expect(policy.check({ peer: 'ipv4:10.0.0.5:1', authorization: 'Bearer nope' })).toMatchObject({ allowed: false });
    expect(policy.check({ peer: 'ipv4:10.0.0.5:1', authorization: `Bearer ${good}` })).toEqual({ allowed: true, principal: 'token:dev' });
  });

  it('can demand tokens from loopback too, and for loopback writes only', () => {
    const tokens = new TokenStore(tmp());
    const strict = new AccessPolicy({ tokens, requireTokenOnLoopback: true });
    expect(strict.check({ peer: '127.0.0.1' }).allowed).toBe(false);
    const relaxed = new AccessPolicy({ tokens });
    expect(relaxed.check({ peer: '127.0.0.1', write: true }, true).allowed).toBe(false);
    expect(relaxed.check({ peer: '127.0.0.1', write: false }, true).allowed).toBe(true);
  });
});
