import { describe, expect, it } from 'vitest';
import { bazelrcSnippet, executorUrl, suggestedJobs } from './bazelrc';

describe('bazelrcSnippet', () => {
  it('points Bazel at the executor with a jobs suggestion', () => {
    expect(bazelrcSnippet({ grpcUrl: 'grpc://127.0.0.1:8980', concurrency: 8 })).toBe(
      'build --remote_executor=grpc://127.0.0.1:8980\nbuild --jobs=16\n',
    );
  });

  it('adds the instance name and auth header when needed', () => {
    const s = bazelrcSnippet({ grpcUrl: 'grpc://10.0.0.5:8980', concurrency: 4, instanceName: 'main', tokenRequired: true });
    expect(s.split('\n')).toEqual([
      'build --remote_executor=grpc://10.0.0.5:8980',
      'build --remote_instance_name=main',
      'build --jobs=8',
      'build --remote_header=authorization="Bearer YOUR_TOKEN"',
      '',
    ]);
  });

  it('substitutes a LAN host', () => {
    expect(bazelrcSnippet({ grpcUrl: 'grpc://0.0.0.0:8980', host: '192.168.1.20', concurrency: 1 })).toContain(
      '--remote_executor=grpc://192.168.1.20:8980',
    );
  });
});

describe('executorUrl', () => {
  it('replaces IPv4 and IPv6 hosts, bracketing IPv6', () => {
    expect(executorUrl('grpc://[::1]:8980', 'fe80::2')).toBe('grpc://[fe80::2]:8980');
    expect(executorUrl('grpcs://localhost:443', 'kiln.lan')).toBe('grpcs://kiln.lan:443');
    expect(executorUrl('grpc://127.0.0.1:8980')).toBe('grpc://127.0.0.1:8980');
  });
});

describe('suggestedJobs', () => {
  it('is twice the slots, at least 2', () => {
    expect(suggestedJobs(1)).toBe(2);
    expect(suggestedJobs(12)).toBe(24);
    expect(suggestedJobs(0)).toBe(2);
  });
});
