// Folding Bazel's events into one invocation's record: outcomes, test runs and
// summaries, idempotence, the bounds; and reading CAS digests out of file uris.
import { describe, expect, it } from 'vitest';
import { blobOfUri, factsOf } from '../../engine/bes/bep-decoder';
import { BuildRecord } from '../../engine/invocations/build-record';
import { InvocationIndex } from '../../engine/invocations/invocation-index';
import { ManualClock } from '../../engine/clock';
import { MAX_BUILD_TARGETS, MAX_TEST_RUNS, MAX_TEST_RUNS_TOTAL } from '../../engine/common/invocation-types';
import { bep } from '../../engine/proto';

const HASH = 'ab'.repeat(32);

describe('blobOfUri', () => {
  it('reads the digest from the end, with or without an instance name', () => {
    expect(blobOfUri(`bytestream://localhost:8980/blobs/${HASH}/42`)).toEqual({ hash: HASH, size: 42 });
    expect(blobOfUri(`bytestream://kiln.local/main/ci/blobs/${HASH}/0`)).toEqual({ hash: HASH, size: 0 });
    expect(blobOfUri(`file:///tmp/blobs/${HASH}/42`)).toBeUndefined();
    expect(blobOfUri(`bytestream://h/blobs/${HASH.toUpperCase()}/42`)).toBeUndefined();
    expect(blobOfUri(`bytestream://h/blobs/${HASH}/-1`)).toBeUndefined();
    expect(blobOfUri(`bytestream://h/uploads/x/blobs/${HASH}`)).toBeUndefined();
  });
});

describe('BuildRecord', () => {
  const fold = (r: BuildRecord, e: bep.IBuildEvent) => r.apply(factsOf(bep.BuildEvent.create(e)));

  it('takes a failed target from TargetComplete and from an analysis abort, and a flaky test from its summary over its runs', () => {
    const r = new BuildRecord();
    fold(r, { id: { targetConfigured: { label: '//a:broken' } }, configured: { targetKind: 'cc_library rule' } });
    fold(r, { id: { targetCompleted: { label: '//a:broken' } }, completed: { success: false } });
    fold(r, { id: { targetCompleted: { label: '//a:bad_deps' } }, aborted: { reason: bep.Aborted.AbortReason.ANALYSIS_FAILURE } });
    for (const [attempt, status] of [[1, bep.TestStatus.FAILED], [2, bep.TestStatus.PASSED]] as const) {
      fold(r, { id: { testResult: { label: '//a:t', run: 1, shard: 1, attempt } }, testResult: { status, testAttemptDurationMillis: 10 } });
    }
    expect(r.summary().tests[0].status).toBe('PASSED'); // Latest run until the summary says otherwise.
    fold(r, { id: { testSummary: { label: '//a:t' } }, testSummary: { overallStatus: bep.TestStatus.FLAKY, totalRunCount: 2 } });
    // A late duplicate of the first attempt neither adds a run nor overrides the summary.
    fold(r, { id: { testResult: { label: '//a:t', run: 1, shard: 1, attempt: 1 } }, testResult: { status: bep.TestStatus.FAILED, testAttemptDurationMillis: 10 } });
    const s = r.summary();
    expect(s.targets).toEqual([
      { label: '//a:broken', kind: 'cc_library rule', outcome: 'failed' },
      { label: '//a:bad_deps', outcome: 'failed', reason: 'ANALYSIS_FAILURE' },
    ]);
    expect(s.tests[0].status).toBe('FLAKY');
    expect(s.tests[0].runs.map((x) => [x.attempt, x.status])).toEqual([[1, 'FAILED'], [2, 'PASSED']]);
    expect(s.events).toBe(7);
    // And the same after a round trip through the journal's JSON.
    expect(BuildRecord.from(JSON.parse(JSON.stringify(s))).summary()).toEqual(s);
  });

  it('keeps at most MAX_BUILD_TARGETS targets and MAX_TEST_RUNS runs, counting every target once', () => {
    const r = new BuildRecord();
    const n = MAX_BUILD_TARGETS + 25;
    for (let i = 0; i < n; i++) {
      fold(r, { id: { targetConfigured: { label: `//p:t${i}` } }, configured: {} });
      fold(r, { id: { targetCompleted: { label: `//p:t${i}` } }, completed: { success: true } });
    }
    for (let run = 1; run <= MAX_TEST_RUNS + 5; run++) {
      fold(r, { id: { testResult: { label: '//p:t0', run, shard: 1, attempt: 1 } }, testResult: { status: bep.TestStatus.PASSED } });
    }
    const s = r.summary();
    expect(s.targets).toHaveLength(MAX_BUILD_TARGETS);
    expect(s.targetsTotal).toBe(n);
    expect(s.tests[0].runs).toHaveLength(MAX_TEST_RUNS);
    // And MAX_TEST_RUNS_TOTAL over all tests: a heavily sharded build does not make one huge record.
    for (let t = 1; t <= MAX_TEST_RUNS_TOTAL / MAX_TEST_RUNS + 5; t++) {
      for (let shard = 1; shard <= MAX_TEST_RUNS; shard++) {
        fold(r, { id: { testResult: { label: `//p:t${t}`, run: 1, shard, attempt: 1 } }, testResult: { status: bep.TestStatus.PASSED } });
      }
    }
    const all = r.summary().tests;
    expect(all.reduce((n, t) => n + t.runs.length, 0)).toBe(MAX_TEST_RUNS_TOTAL);
    expect(all.at(-1)!.runs).toEqual([]); // Listed with its status, its runs not kept.
    expect(all.at(-1)!.status).toBe('PASSED');
  });

  it('keeps Bazel\'s finish time and exit code over the lifecycle\'s later attempt-finished', () => {
    const r = new BuildRecord();
    r.apply([{ kind: 'started', at: 1_000 }]);
    fold(r, { id: { buildFinished: {} }, finished: { finishTimeMillis: 5_000, exitCode: { name: 'TESTS_FAILED', code: 3 } } });
    r.apply([{ kind: 'finished', at: 6_000 }]);
    expect(r.summary()).toMatchObject({ startedAt: 1_000, finishedAt: 5_000, exitCode: { name: 'TESTS_FAILED', code: 3 } });
  });
});

describe('an invocation with BES', () => {
  it("takes its duration from Bazel's own start and finish, even when Bazel's clock is off from Kiln's", () => {
    const clock = new ManualClock();
    const index = new InvocationIndex({}, clock);
    const hourAhead = clock.now() + 3_600_000;
    // Kiln sees the first remote call now; Bazel, an hour ahead, says it started and finished 5 s apart.
    index.applyBuildEvent('inv-skew', [{ kind: 'started', at: hourAhead, command: 'build' }], clock.now());
    clock.advance(5_000);
    index.applyBuildEvent('inv-skew', [{ kind: 'finished', at: hourAhead + 5_000, exitCode: { name: 'SUCCESS', code: 0 } }], clock.now());
    expect(index.get('inv-skew')).toMatchObject({ state: 'finished', durationMs: 5_000 });
  });
});
