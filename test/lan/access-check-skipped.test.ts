// The gRPC access check is left out only where the policy would admit every
// caller that can reach the server anyway; everywhere else the interceptor stays.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AccessPolicy } from '../../engine/auth/access-policy';
import { TokenStore } from '../../engine/auth/tokens';
import { EventBus } from '../../engine/events/event-bus';
import type { Access } from '../../engine/lan/access';
import { grpcInterceptors } from '../../engine/lan/wiring';

function access(requireTokenOnLoopback: boolean): Access {
  const tokens = new TokenStore(join(mkdtempSync(join(tmpdir(), 'kiln-access-')), 'tokens.json'));
  return { tokens, policy: new AccessPolicy({ tokens, requireTokenOnLoopback }) };
}

describe('gRPC access check', () => {
  it('is left out on a loopback host when loopback callers need no token', () => {
    for (const host of ['127.0.0.1', '::1', 'localhost']) {
      expect(access(false).policy.admitsEveryoneOn(host)).toBe(true);
      expect(grpcInterceptors(access(false), host, new EventBus(), () => 0)).toEqual([]);
    }
  });

  it('stays on a LAN host, and on loopback with require-token-on-loopback', () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.20']) {
      expect(access(false).policy.admitsEveryoneOn(host)).toBe(false);
      expect(grpcInterceptors(access(false), host, new EventBus(), () => 0)).toHaveLength(1);
    }
    expect(access(true).policy.admitsEveryoneOn('127.0.0.1')).toBe(false);
    expect(grpcInterceptors(access(true), '127.0.0.1', new EventBus(), () => 0)).toHaveLength(1);
  });

  it('where it is left out, the policy would have admitted every caller that can connect', () => {
    const { policy } = access(false);
    for (const peer of ['ipv4:127.0.0.1:5000', 'ipv6:[::1]:5000', 'ipv4:127.0.0.5:1']) {
      expect(policy.check({ peer }).allowed).toBe(true);
    }
    expect(policy.check({ peer: 'ipv4:192.168.1.7:5000' }).allowed).toBe(false);
  });
});
