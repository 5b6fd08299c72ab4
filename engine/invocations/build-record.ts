// One invocation's Build Event Service record: Bazel's events folded into the
// command line, the targets with their outcome, the test results and the exit
// status. Folding is idempotent per key (target label; test label, shard, run,
// attempt), so an event sent twice changes nothing; every list is bounded.
import type { BuildFact } from '../common/build-event-facts';
import {
  MAX_BUILD_TARGETS,
  MAX_TEST_RUNS,
  MAX_TEST_RUNS_TOTAL,
  MAX_TEST_TARGETS,
  type BuildEventSummary,
  type InvocationTarget,
  type TestTargetResult,
} from '../common/invocation-types';

export class BuildRecord {
  private head: Omit<BuildEventSummary, 'targets' | 'tests' | 'targetsTotal' | 'testsTotal' | 'events'> = {};
  private events = 0;
  private readonly targets = new Map<string, InvocationTarget>();
  private targetsTotal = 0;
  private readonly tests = new Map<string, TestTargetResult>();
  private testsTotal = 0;
  /** Runs kept over all tests (bounded: an invocation is saved whole each time it changes). */
  private runs = 0;
  /** Test labels whose summary came: their status is the summary's, not the latest run's. */
  private readonly summarized = new Set<string>();

  /** A record as a summary saved it (the journal), to keep folding into. */
  static from(saved: BuildEventSummary): BuildRecord {
    const r = new BuildRecord();
    const { targets, tests, targetsTotal, testsTotal, events, ...head } = saved;
    r.head = head;
    r.events = events ?? 0;
    for (const t of (targets ?? []).slice(0, MAX_BUILD_TARGETS)) r.targets.set(t.label, { ...t });
    for (const t of (tests ?? []).slice(0, MAX_TEST_TARGETS)) {
      const runs = (t.runs ?? []).slice(0, Math.min(MAX_TEST_RUNS, MAX_TEST_RUNS_TOTAL - r.runs));
      r.runs += runs.length;
      r.tests.set(t.label, { ...t, runs });
    }
    for (const t of r.tests.values()) if (t.totalRunCount !== undefined) r.summarized.add(t.label);
    r.targetsTotal = Math.max(targetsTotal ?? 0, r.targets.size);
    r.testsTotal = Math.max(testsTotal ?? 0, r.tests.size);
    return r;
  }

  get startedAt(): number | undefined {
    return this.head.startedAt;
  }

  get finishedAt(): number | undefined {
    return this.head.finishedAt;
  }

  apply(facts: readonly BuildFact[]): void {
    this.events++;
    for (const f of facts) this.fold(f);
  }

  summary(opts: { runs: boolean } = { runs: true }): BuildEventSummary {
    return {
      ...this.head,
      commandLine: this.head.commandLine && [...this.head.commandLine],
      patterns: this.head.patterns && [...this.head.patterns],
      events: this.events,
      targets: [...this.targets.values()].map((t) => ({ ...t })),
      targetsTotal: this.targetsTotal,
      tests: [...this.tests.values()].map((t) => ({ ...t, runs: opts.runs ? t.runs.map((r) => ({ ...r })) : [] })),
      testsTotal: this.testsTotal,
    };
  }

  private fold(f: BuildFact): void {
    switch (f.kind) {
      case 'started':
        if (f.at !== undefined) this.head.startedAt = Math.min(this.head.startedAt ?? f.at, f.at);
        this.head.command ??= f.command;
        this.head.toolVersion ??= f.toolVersion;
        this.head.workspace ??= f.workspace;
        return;
      case 'commandLine':
        this.head.commandLine = f.args;
        return;
      case 'patterns':
        this.head.patterns = f.patterns;
        return;
      case 'configured': {
        const t = this.target(f.label, true);
        if (!t) return;
        t.kind = f.targetKind ?? t.kind;
        t.testSize = f.testSize ?? t.testSize;
        return;
      }
      case 'completed': {
        const t = this.target(f.label);
        if (t) t.outcome = f.success ? 'built' : 'failed';
        return;
      }
      case 'aborted': {
        const t = this.target(f.label);
        if (!t) return;
        t.outcome = f.skipped ? 'skipped' : 'failed';
        t.reason = f.reason;
        return;
      }
      case 'testResult': {
        const { kind: _kind, label, ...run } = f;
        const test = this.test(label);
        if (!test) return;
        const i = test.runs.findIndex((r) => r.shard === run.shard && r.run === run.run && r.attempt === run.attempt);
        if (i >= 0) test.runs[i] = run;
        else if (test.runs.length < MAX_TEST_RUNS && this.runs < MAX_TEST_RUNS_TOTAL) {
          test.runs.push(run);
          this.runs++;
        }
        if (!this.summarized.has(label)) test.status = run.status;
        return;
      }
      case 'testSummary': {
        const { kind: _kind, label, ...summary } = f;
        const test = this.test(label, true);
        if (!test) return;
        Object.assign(test, summary);
        this.summarized.add(label);
        return;
      }
      case 'finished':
        if (f.exitCode) {
          // Bazel's BuildFinished: its own finish time and exit code.
          this.head.finishedAt = f.at ?? this.head.finishedAt;
          this.head.exitCode = f.exitCode;
        } else {
          // The lifecycle's attempt-finished comes later and says less.
          this.head.finishedAt ??= f.at;
        }
        return;
    }
  }

  /**
   * The target's entry, made on first sight. Past the bound a target is only
   * counted, once, when it is configured (every target is, exactly once).
   */
  private target(label: string, first = false): InvocationTarget | undefined {
    let t = this.targets.get(label);
    if (!t) {
      if (this.targets.size >= MAX_BUILD_TARGETS) {
        if (first) this.targetsTotal++;
        return undefined;
      }
      this.targetsTotal++;
      t = { label, outcome: 'configured' };
      this.targets.set(label, t);
    }
    return t;
  }

  /** Like target(): past the bound a test is counted once, at its summary. */
  private test(label: string, last = false): TestTargetResult | undefined {
    let t = this.tests.get(label);
    if (!t) {
      if (this.tests.size >= MAX_TEST_TARGETS) {
        if (last) this.testsTotal++;
        return undefined;
      }
      this.testsTotal++;
      t = { label, status: 'NO_STATUS', runs: [] };
      this.tests.set(label, t);
    }
    return t;
  }
}
