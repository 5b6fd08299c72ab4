import { describe, expect, it } from 'vitest';
import type { BuildEventSummary } from '../../../engine/common/api-types';
import { buildStatus, commandLineText, invocationState, targetCounts, targetRows, testRows } from './build-view';

const HASH = 'c0'.repeat(32);

function build(over: Partial<BuildEventSummary> = {}): BuildEventSummary {
  return { events: 10, targets: [], targetsTotal: 0, tests: [], testsTotal: 0, ...over };
}

describe('buildStatus', () => {
  it("reads Bazel's exit code", () => {
    expect(buildStatus(build({ exitCode: { name: 'SUCCESS', code: 0 }, finishedAt: 1 }))).toEqual({ text: 'Succeeded', tone: 'ok' });
    expect(buildStatus(build({ exitCode: { name: 'TESTS_FAILED', code: 3 }, finishedAt: 1 }))).toEqual({ text: 'Tests failed (exit 3)', tone: 'bad' });
    expect(buildStatus(build({ exitCode: { name: 'INTERRUPTED', code: 8 } })).tone).toBe('warn');
    expect(buildStatus(build())).toEqual({ text: 'Running', tone: 'accent' });
    expect(buildStatus(build({ finishedAt: 5 })).text).toBe('Ended (no exit code)');
  });
});

describe('commandLineText', () => {
  it('quotes only what a shell would split or expand', () => {
    expect(commandLineText(['bazel', 'test', '--remote_header=authorization=Bearer abc', "--x=it's", '//pkg:all'])).toBe(
      `bazel test '--remote_header=authorization=Bearer abc' '--x=it'\\''s' //pkg:all`,
    );
    expect(commandLineText(undefined)).toBe('');
  });
});

describe('targetRows and targetCounts', () => {
  it('puts failures first and says how many are not listed', () => {
    const b = build({
      targets: [
        { label: '//b:ok', outcome: 'built' },
        { label: '//a:ok', outcome: 'built' },
        { label: '//z:broken', outcome: 'failed', reason: 'ANALYSIS_FAILURE' },
        { label: '//w:win', outcome: 'skipped' },
      ],
      targetsTotal: 6,
    });
    expect(targetRows(b).map((t) => [t.label, t.badge.text])).toEqual([
      ['//z:broken', 'Failed'],
      ['//w:win', 'Skipped'],
      ['//a:ok', 'Built'],
      ['//b:ok', 'Built'],
    ]);
    expect(targetCounts(b)).toBe('2 built · 1 failed · 1 skipped · 2 more not listed');
  });
});

describe('testRows', () => {
  it('orders failing tests first, names shards and attempts, and links a CAS test.log', () => {
    const rows = testRows(
      build({
        tests: [
          { label: '//t:pass', status: 'PASSED', runs: [{ run: 1, shard: 1, attempt: 1, status: 'PASSED', testLog: { name: 'test.log', uri: 'file:///tmp/test.log' } }] },
          {
            label: '//t:flaky',
            status: 'FLAKY',
            shardCount: 2,
            runs: [
              { run: 1, shard: 2, attempt: 1, status: 'FAILED', testLog: { name: 'test.log', uri: `bytestream://h/blobs/${HASH}/77`, blob: { hash: HASH, size: 77 } } },
              { run: 1, shard: 2, attempt: 2, status: 'PASSED' },
            ],
          },
          { label: '//t:slow', status: 'TIMEOUT', runs: [] },
        ],
      }),
    );
    expect(rows.map((r) => [r.label, r.badge.text])).toEqual([
      ['//t:slow', 'Timed out'],
      ['//t:flaky', 'Flaky'],
      ['//t:pass', 'Passed'],
    ]);
    expect(rows[1].runs.map((r) => [r.name, r.badge.text, r.logPath])).toEqual([
      ['shard 2/2', 'Failed', `/api/blobs/${HASH}/77`],
      ['shard 2/2 · attempt 2', 'Passed', undefined],
    ]);
    // A log only on Bazel's machine has no link.
    expect(rows[2].runs[0]).toMatchObject({ name: 'run', logPath: undefined });
  });
});

describe('invocationState', () => {
  const actions = { executed: 3, cached: 0, failed: 1, queued: 0, running: 0 };
  it("prefers Bazel's exit code over what Kiln saw of the actions", () => {
    expect(invocationState({ state: 'finished', actions, build: build({ exitCode: { name: 'SUCCESS', code: 0 } }) })).toEqual({ text: 'Succeeded', tone: 'ok' });
    expect(invocationState({ state: 'finished', actions })).toEqual({ text: 'Had failures', tone: 'bad' });
    expect(invocationState({ state: 'running', actions, build: build() })).toEqual({ text: 'Running', tone: 'accent' });
  });
});
