// The invocation page's view of what Bazel said over the Build Event Service:
// the build's status, its command line, targets by outcome (problems first)
// and test results with where their test.log can be read. Pure functions.
import type { BuildEventSummary, InvocationSummary, InvocationTarget, TestRun, TestTargetResult } from '../../../engine/common/api-types';
import type { Tone } from './badges';

export interface BuildStatusView {
  text: string;
  tone: Tone;
}

/** Bazel's exit code name as a person reads it; "Running" until the build says it ended. */
export function buildStatus(build: BuildEventSummary): BuildStatusView {
  const exit = build.exitCode;
  if (!exit) return build.finishedAt !== undefined ? { text: 'Ended (no exit code)', tone: 'warn' } : { text: 'Running', tone: 'accent' };
  if (exit.code === 0) return { text: 'Succeeded', tone: 'ok' };
  const words = exit.name ? exit.name.toLowerCase().replace(/_/g, ' ') : 'failed';
  return { text: `${words[0].toUpperCase()}${words.slice(1)} (exit ${exit.code})`, tone: exit.name === 'INTERRUPTED' ? 'warn' : 'bad' };
}

/** The command line as one pasteable shell line: arguments with spaces or quotes are single-quoted. */
export function commandLineText(args: readonly string[] | undefined): string {
  return (args ?? []).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

const OUTCOME_ORDER: Record<InvocationTarget['outcome'], number> = { failed: 0, configured: 1, skipped: 2, built: 3 };
const OUTCOME_VIEW: Record<InvocationTarget['outcome'], BuildStatusView> = {
  failed: { text: 'Failed', tone: 'bad' },
  configured: { text: 'Not built yet', tone: 'neutral' },
  skipped: { text: 'Skipped', tone: 'warn' },
  built: { text: 'Built', tone: 'ok' },
};

export interface TargetRow extends InvocationTarget {
  badge: BuildStatusView;
}

/** Targets with failures first, then unfinished, skipped and built; by label within each. */
export function targetRows(build: BuildEventSummary): TargetRow[] {
  return [...build.targets]
    .sort((a, b) => OUTCOME_ORDER[a.outcome] - OUTCOME_ORDER[b.outcome] || a.label.localeCompare(b.label))
    .map((t) => ({ ...t, badge: OUTCOME_VIEW[t.outcome] }));
}

/** "3 built · 1 failed · 2 skipped", with the count beyond the listed ones when the list is cut. */
export function targetCounts(build: BuildEventSummary): string {
  const n: Record<string, number> = {};
  for (const t of build.targets) n[t.outcome] = (n[t.outcome] ?? 0) + 1;
  const parts = (['built', 'failed', 'skipped', 'configured'] as const).filter((o) => n[o]).map((o) => `${n[o]} ${o === 'configured' ? 'pending' : o}`);
  const unlisted = build.targetsTotal - build.targets.length;
  if (unlisted > 0) parts.push(`${unlisted} more not listed`);
  return parts.join(' · ');
}

export function testStatusView(status: string): BuildStatusView {
  switch (status) {
    case 'PASSED':
      return { text: 'Passed', tone: 'ok' };
    case 'FLAKY':
      return { text: 'Flaky', tone: 'warn' };
    case 'TIMEOUT':
      return { text: 'Timed out', tone: 'bad' };
    case 'FAILED':
      return { text: 'Failed', tone: 'bad' };
    case 'FAILED_TO_BUILD':
      return { text: 'Failed to build', tone: 'bad' };
    case 'REMOTE_FAILURE':
      return { text: 'Remote failure', tone: 'bad' };
    case 'INCOMPLETE':
      return { text: 'Incomplete', tone: 'warn' };
    case 'TOOL_HALTED_BEFORE_TESTING':
      return { text: 'Not run (build halted)', tone: 'warn' };
    default:
      return { text: 'No status', tone: 'neutral' };
  }
}

export interface TestRunRow extends TestRun {
  /** "shard 2/4 · run 1 · attempt 2", only the parts that say something. */
  name: string;
  badge: BuildStatusView;
  /** Where the dashboard reads the test.log (GET /api/blobs/…), when it is a CAS blob. */
  logPath?: string;
  logSize?: number;
}

export interface TestRow extends Omit<TestTargetResult, 'runs'> {
  badge: BuildStatusView;
  runs: TestRunRow[];
}

const BAD_FIRST: Record<Tone, number> = { bad: 0, warn: 1, accent: 2, info: 3, neutral: 4, ok: 5 };

/** Test targets with failures first; each run with its name, badge and test.log link. */
export function testRows(build: BuildEventSummary): TestRow[] {
  return build.tests
    .map((t) => ({
      ...t,
      badge: testStatusView(t.status),
      runs: t.runs.map((r) => runRow(r, t)),
    }))
    .sort((a, b) => BAD_FIRST[a.badge.tone] - BAD_FIRST[b.badge.tone] || a.label.localeCompare(b.label));
}

function runRow(r: TestRun, t: TestTargetResult): TestRunRow {
  const parts: string[] = [];
  if ((t.shardCount ?? 1) > 1) parts.push(`shard ${r.shard}/${t.shardCount}`);
  if ((t.runCount ?? 1) > 1) parts.push(`run ${r.run}`);
  if (r.attempt > 1) parts.push(`attempt ${r.attempt}`);
  const blob = r.testLog?.blob;
  return {
    ...r,
    name: parts.join(' · ') || 'run',
    badge: testStatusView(r.status),
    logPath: blob ? `/api/blobs/${blob.hash}/${blob.size}` : undefined,
    logSize: blob?.size,
  };
}

/** The Invocations list's state cell: Bazel's own verdict when BES said it, else what Kiln saw of the actions. */
export function invocationState(inv: Pick<InvocationSummary, 'state' | 'actions' | 'build'>): BuildStatusView {
  if (inv.build?.exitCode) return buildStatus(inv.build);
  if (inv.state === 'running') return { text: 'Running', tone: 'accent' };
  return inv.actions.failed ? { text: 'Had failures', tone: 'bad' } : { text: 'Finished', tone: 'neutral' };
}
