// The fake API's invocations: one `bazel test` that sent build events (a
// failing, a flaky and a passing test, a skipped target, test.logs in the
// "CAS") and one build that used remote execution without BES.
import { createHash } from 'node:crypto';
import type { InvocationSummary } from '../../engine/common/api-types';

export const BES_INVOCATION = '7d3f0c2a-0000-4000-8000-0000000be5e5';
export const PLAIN_INVOCATION = '7d3f0c2a-0000-4000-8000-00000000a11a';
export const FAILING_LOG = 'exec ${PAGER:-/usr/bin/less} "$0" || exit 1\n-----\nexpected 4, got 5\nFAIL: //web:login_test\n';

export interface FakeInvocations {
  list(): InvocationSummary[];
  get(id: string): InvocationSummary | undefined;
  /** Blob bytes by "hash/size". */
  blob(hash: string, size: number): Buffer | undefined;
}

export function fakeInvocations(now: number): FakeInvocations {
  const blobs = new Map<string, Buffer>();
  const put = (text: string) => {
    const data = Buffer.from(text);
    const hash = createHash('sha256').update(data).digest('hex');
    blobs.set(`${hash}/${data.length}`, data);
    return { name: 'test.log', uri: `bytestream://127.0.0.1:8980/blobs/${hash}/${data.length}`, blob: { hash, size: data.length } };
  };
  const startedAt = now - 95_000;
  const withBes: InvocationSummary = {
    id: BES_INVOCATION,
    toolName: 'bazel',
    toolVersion: '4.2.3',
    startedAt,
    lastSeenAt: now - 5_000,
    durationMs: 90_000,
    state: 'finished',
    actions: { executed: 14, cached: 31, failed: 1, queued: 0, running: 0 },
    calls: 120,
    targets: ['//web:login_test', '//web:app'],
    targetCount: 2,
    mnemonics: { TestRunner: 3, Javac: 11 },
    build: {
      command: 'test',
      commandLine: ['bazel', 'test', '--remote_executor=grpc://127.0.0.1:8980', '--bes_backend=grpc://127.0.0.1:8980', '//web/...'],
      patterns: ['//web/...'],
      toolVersion: '4.2.3',
      startedAt,
      finishedAt: now - 5_000,
      exitCode: { name: 'TESTS_FAILED', code: 3 },
      events: 212,
      targets: [
        { label: '//web:app', kind: 'java_binary rule', outcome: 'built' },
        { label: '//web:login_test', kind: 'java_test rule', testSize: 'SMALL', outcome: 'built' },
        { label: '//web:retry_test', kind: 'sh_test rule', testSize: 'SMALL', outcome: 'built' },
        { label: '//web:smoke_test', kind: 'sh_test rule', testSize: 'SMALL', outcome: 'built' },
        { label: '//web:windows_only', kind: 'sh_binary rule', outcome: 'skipped', reason: 'incompatible with the platform' },
      ],
      targetsTotal: 5,
      tests: [
        { label: '//web:smoke_test', status: 'PASSED', runCount: 1, shardCount: 1, totalRunCount: 1, runs: [{ run: 1, shard: 1, attempt: 1, status: 'PASSED', durationMs: 800, strategy: 'remote', testLog: put('smoke ok\n') }] },
        {
          label: '//web:retry_test',
          status: 'FLAKY',
          totalRunCount: 2,
          runs: [
            { run: 1, shard: 1, attempt: 1, status: 'FAILED', durationMs: 1200, strategy: 'remote', testLog: put('connection reset\n') },
            { run: 1, shard: 1, attempt: 2, status: 'PASSED', durationMs: 1100, strategy: 'remote', testLog: put('ok\n') },
          ],
        },
        { label: '//web:login_test', status: 'FAILED', totalRunCount: 1, runs: [{ run: 1, shard: 1, attempt: 1, status: 'FAILED', durationMs: 4200, strategy: 'remote', testLog: put(FAILING_LOG) }] },
      ],
      testsTotal: 3,
    },
  };
  const plain: InvocationSummary = {
    id: PLAIN_INVOCATION,
    toolName: 'bazel',
    toolVersion: '4.2.3',
    startedAt: now - 600_000,
    lastSeenAt: now - 540_000,
    durationMs: 60_000,
    state: 'finished',
    actions: { executed: 7, cached: 0, failed: 0, queued: 0, running: 0 },
    calls: 40,
    targets: ['//core:lib'],
    targetCount: 1,
    mnemonics: { CppCompile: 6, CppLink: 1 },
  };
  const all = [withBes, plain];
  return {
    list: () => all,
    get: (id) => all.find((i) => i.id === id),
    blob: (hash, size) => blobs.get(`${hash}/${size}`),
  };
}
