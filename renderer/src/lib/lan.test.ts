import { describe, expect, it } from 'vitest';
import type { ConnectInfo } from '../../../engine/common/api-types';
import { ApiFailure } from './api';
import { bazelFlagFor, connectSnippet, instanceLabel, instanceNames, isMissingEndpoint, securityBadge, showInstanceColumn, tokenNameProblem } from './lan';

describe('token names', () => {
  it('accepts what the engine accepts and explains the rest', () => {
    expect(tokenNameProblem('alice@ci-01.example')).toBeNull();
    expect(tokenNameProblem('  ')).toMatch(/Give the token a name/);
    expect(tokenNameProblem('a b')).toMatch(/letters, digits/);
    expect(tokenNameProblem('x'.repeat(65))).toMatch(/64/);
    expect(tokenNameProblem('bob', ['alice', 'bob'])).toMatch(/already a token named "bob"/);
  });

  it('gives the exact Bazel flag for a new token', () => {
    expect(bazelFlagFor({ token: 'kiln_abc', bazelFlag: '--remote_header=authorization="Bearer kiln_abc"' })).toBe('--remote_header=authorization="Bearer kiln_abc"');
    expect(bazelFlagFor({ token: 'kiln_old' })).toBe('--remote_header=authorization="Bearer kiln_old"');
  });
});

describe('security badge', () => {
  it('says TLS, plain LAN (a warning) or local only', () => {
    expect(securityBadge(null)).toBeNull();
    expect(securityBadge({ tls: true, grpcUrl: 'grpcs://h:1' })).toMatchObject({ tls: true, label: 'TLS', tone: 'ok' });
    expect(securityBadge({ tls: false, grpcUrl: 'grpc://0.0.0.0:1', lan: { addresses: ['10.0.0.2'], tokenRequired: true } })).toMatchObject({ tls: false, tone: 'warn', label: 'No TLS' });
    expect(securityBadge({ tls: false, grpcUrl: 'grpc://127.0.0.1:1' })).toMatchObject({ tone: 'idle', label: 'Local only' });
    // Engines without the field: the URL scheme tells.
    expect(securityBadge({ grpcUrl: 'grpcs://127.0.0.1:1' })?.tls).toBe(true);
  });
});

describe('instance names', () => {
  it('lists the default first and shows a column only for named instances', () => {
    expect(instanceNames({ instanceNames: ['zeta', '', 'alpha', 'zeta'] })).toEqual(['', 'alpha', 'zeta']);
    expect(instanceNames(null)).toEqual([]);
    expect(instanceLabel('')).toBe('default');
    expect(instanceLabel('ci')).toBe('ci');
    expect(showInstanceColumn({ instanceNames: [''] })).toBe(false);
    expect(showInstanceColumn({ instanceNames: ['', 'ci'] })).toBe(true);
    expect(showInstanceColumn({})).toBe(false);
  });
});

describe('connect lines', () => {
  const status = { grpcUrl: 'grpcs://0.0.0.0:8980', concurrency: 4, lan: { addresses: ['192.168.1.20'], tokenRequired: true } };
  const info: ConnectInfo = {
    endpoint: 'grpcs://192.168.1.20:8980',
    tls: true,
    caUrl: '/api/tls/ca.pem',
    caPath: '/srv/kiln/tls/ca.pem',
    bazelrc: [
      'build --remote_executor=grpcs://192.168.1.20:8980',
      'build --tls_certificate=/srv/kiln/tls/ca.pem',
      'build --remote_header=authorization="Bearer TOKEN"',
    ],
  };

  it("uses the engine's lines, adding the instance and --jobs", () => {
    expect(connectSnippet({ info, status, instanceName: 'ci' })).toBe(
      [
        'build --remote_executor=grpcs://192.168.1.20:8980',
        'build --remote_instance_name=ci',
        'build --tls_certificate=/srv/kiln/tls/ca.pem',
        'build --remote_header=authorization="Bearer TOKEN"',
        'build --jobs=8',
        '',
      ].join('\n'),
    );
  });

  it('falls back to the local snippet when the engine has no /api/connect', () => {
    expect(connectSnippet({ info: null, status: { grpcUrl: 'grpc://127.0.0.1:8980', concurrency: 2 } })).toBe('build --remote_executor=grpc://127.0.0.1:8980\nbuild --jobs=4\n');
    expect(connectSnippet({ info: null, status, host: '192.168.1.20' })).toContain('build --remote_executor=grpcs://192.168.1.20:8980');
  });

  it('treats only 404/405 as a missing endpoint', () => {
    expect(isMissingEndpoint(new ApiFailure(404, 'x'))).toBe(true);
    expect(isMissingEndpoint(new ApiFailure(405, 'x'))).toBe(true);
    expect(isMissingEndpoint(new ApiFailure(401, 'x'))).toBe(false);
    expect(isMissingEndpoint(new Error('x'))).toBe(false);
  });
});
