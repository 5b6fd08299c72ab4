// Each named health problem appears while its condition holds and goes when it stops.
import { beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import type { ActionOutcome } from '../../engine/common/action-vocabulary';
import { EventBus } from '../../engine/events/event-bus';
import { HealthMonitor, type HealthFacts } from '../../engine/health/health-monitor';

const GiB = 1024 ** 3;
let clock: ManualClock;
let bus: EventBus;
let mono: number;
let facts: {
  enabled: boolean;
  queue: { depth: number; slots: number };
  paused?: { until?: number };
  readiness: { ready: boolean; reason?: string };
  cache: { bytes: number; budgetBytes: number };
  disk: { usedBytes: number; totalBytes: number } | null;
  sandbox?: { enabled: boolean; reason: string };
  upstream?: { url: string; reachable?: boolean; problem?: string };
  peers?: { name: string; reachable?: boolean; problem?: string }[];
};
let monitor: HealthMonitor;

beforeEach(() => {
  clock = new ManualClock();
  bus = new EventBus();
  mono = 0;
  facts = {
    enabled: true,
    queue: { depth: 0, slots: 4 },
    readiness: { ready: true },
    cache: { bytes: 1 * GiB, budgetBytes: 20 * GiB },
    disk: { usedBytes: 100 * GiB, totalBytes: 500 * GiB },
  };
  const source: HealthFacts = {
    executionEnabled: () => facts.enabled,
    queue: () => facts.queue,
    paused: () => facts.paused,
    readiness: () => facts.readiness,
    cache: () => facts.cache,
    disk: () => facts.disk,
    monotonic: () => mono,
    sandbox: () => facts.sandbox,
    upstream: () => facts.upstream,
    peers: () => facts.peers,
  };
  monitor = new HealthMonitor(bus, source, clock);
});

/** Moves wall and monotonic time together, as when nothing jumps. */
function pass(ms: number) {
  clock.advance(ms);
  mono += ms;
}

const ids = () => monitor.check().problems.map((p) => p.id);
const problem = (id: string) => monitor.check().problems.find((p) => p.id === id);

function finish(outcome: ActionOutcome, message?: string, exitCode = outcome === 'failure' ? 1 : 0) {
  bus.emit({ type: 'action.finished', id: `a${Math.random()}`, at: clock.now(), outcome, exitCode, message, timing: { queuedMs: 0, inputFetchMs: 0, executionMs: 0, outputUploadMs: 0, totalMs: 0 } });
}

describe('HealthMonitor', () => {
  it('reports nothing on a healthy Kiln', () => {
    expect(monitor.check()).toEqual({ at: clock.now(), problems: [] });
  });

  it('names execution off while Bazel calls Execute, and forgets it when execution is on again', () => {
    facts.enabled = false;
    expect(ids()).toEqual([]);
    bus.emit({ type: 'execution.refused', at: clock.now(), reason: 'off' });
    const p = problem('execution-off')!;
    expect(p).toMatchObject({ severity: 'error', title: 'Execution is off while Bazel waits' });
    expect(p.message).toMatch(/1 Execute call was refused.*Turn execution on/);
    facts.enabled = true;
    bus.emit({ type: 'execution.toggled', at: clock.now(), enabled: true });
    expect(ids()).toEqual([]);
  });

  it('names execution off while actions wait in the queue, and lets old refusals expire', () => {
    facts.enabled = false;
    facts.queue = { depth: 3, slots: 4 };
    expect(problem('execution-off')?.message).toMatch(/3 action\(s\) wait/);
    facts.queue = { depth: 0, slots: 4 };
    bus.emit({ type: 'execution.refused', at: clock.now(), reason: 'off' });
    expect(ids()).toContain('execution-off');
    pass(6 * 60_000);
    expect(ids()).not.toContain('execution-off');
  });

  it('names a paused farm (no slots)', () => {
    facts.paused = { until: clock.now() + 15 * 60_000 };
    expect(problem('farm-paused')).toMatchObject({ severity: 'warning', title: 'No slots: the farm is paused' });
    facts.queue = { depth: 2, slots: 4 };
    expect(problem('farm-paused')?.message).toMatch(/until \d\d:\d\d UTC; 2 queued/);
    facts.paused = undefined;
    expect(ids()).toEqual([]);
  });

  it('names a queue more than 10× the slots only after it has lasted a minute', () => {
    facts.queue = { depth: 41, slots: 4 };
    expect(ids()).toEqual([]);
    pass(30_000);
    expect(ids()).toEqual([]);
    pass(30_000);
    expect(problem('queue-backlog')).toMatchObject({ severity: 'warning' });
    expect(problem('queue-backlog')?.message).toMatch(/41 actions wait for 4 slot/);
    // Dips below the line reset the minute.
    facts.queue = { depth: 40, slots: 4 };
    expect(ids()).toEqual([]);
    facts.queue = { depth: 80, slots: 4 };
    pass(59_000);
    expect(ids()).toEqual([]);
  });

  it('names every recent action failing, and clears on a success', () => {
    for (let i = 0; i < 9; i++) finish('failure');
    expect(ids()).toEqual([]);
    finish('timeout');
    expect(problem('all-failing')).toMatchObject({ severity: 'error' });
    // Cached answers and cancellations say nothing about whether actions can run.
    finish('cached');
    finish('cancelled');
    expect(ids()).toContain('all-failing');
    finish('success');
    expect(ids()).toEqual([]);
  });

  it('names the same infrastructure error repeated, not different ones', () => {
    finish('error', 'the action launcher exited (SIGKILL); its running actions were lost');
    finish('error', 'the action launcher exited (SIGKILL); its running actions were lost');
    expect(ids()).toEqual([]);
    finish('error', 'the action launcher exited (SIGKILL); its running actions were lost');
    expect(problem('infrastructure-error')?.message).toMatch(/launcher exited/);
    finish('error', 'ENOSPC: no space left on device');
    expect(ids()).not.toContain('infrastructure-error');
  });

  it('names a runner that is not ready (a sandbox asked for but missing)', () => {
    facts.readiness = { ready: false, reason: 'bubblewrap is not installed; apt-get install bubblewrap' };
    expect(problem('runner-unavailable')?.message).toMatch(/^bubblewrap is not installed/);
    facts.readiness = { ready: true };
    expect(ids()).toEqual([]);
  });

  it('names a sandbox asked for (LAN mode) that could not be had, and not one that is on', () => {
    facts.sandbox = { enabled: false, reason: 'bubblewrap is not installed' };
    expect(problem('sandbox-unavailable')).toMatchObject({ severity: 'error' });
    expect(problem('sandbox-unavailable')?.message).toMatch(/bubblewrap is not installed/);
    facts.sandbox = { enabled: true, reason: 'LAN mode' };
    expect(ids()).toEqual([]);
  });

  it('names an unreachable upstream while it is down, and only then', () => {
    facts.upstream = { url: 'grpc://cluster:8980' };
    expect(ids()).toEqual([]); // not contacted yet
    facts.upstream = { url: 'grpc://cluster:8980', reachable: false, problem: 'connection refused' };
    expect(problem('upstream-unreachable')?.message).toMatch(/^grpc:\/\/cluster:8980 cannot be used: connection refused/);
    facts.upstream = { url: 'grpc://cluster:8980', reachable: true };
    expect(ids()).toEqual([]);
  });

  it('names the peers that cannot be used, as information, and none while all answer', () => {
    facts.peers = [
      { name: 'peer:desk-2', reachable: true },
      { name: 'peer:desk-3' }, // not read yet
    ];
    expect(ids()).toEqual([]);
    facts.peers = [
      { name: 'peer:desk-2', reachable: false, problem: 'it refused our token' },
      { name: 'peer:desk-3', reachable: true },
    ];
    expect(problem('peers-unreachable')).toMatchObject({ severity: 'info', title: 'A peer cannot be used' });
    expect(problem('peers-unreachable')?.message).toMatch(/^1 of 2 peer Kilns cannot be used: desk-2 \(it refused our token\)\./);
    facts.peers = [{ name: 'peer:desk-2', reachable: true }];
    expect(ids()).toEqual([]);
  });

  it('names a nearly full disk and a cache near its budget', () => {
    facts.disk = { usedBytes: 499.5 * GiB, totalBytes: 500 * GiB };
    expect(problem('disk-nearly-full')).toMatchObject({ severity: 'error' });
    facts.cache = { bytes: 19 * GiB, budgetBytes: 20 * GiB };
    expect(ids()).toEqual(['disk-nearly-full', 'cache-nearly-full']);
    facts.disk = { usedBytes: 100 * GiB, totalBytes: 500 * GiB };
    facts.cache = { bytes: 10 * GiB, budgetBytes: 20 * GiB };
    expect(ids()).toEqual([]);
  });

  it('names a clock jump for a while, then forgets it', () => {
    monitor.check();
    pass(2_000);
    clock.advance(3_600_000); // the wall clock alone moves an hour
    expect(problem('clock-jump')?.message).toMatch(/forward by 60 minutes/);
    pass(11 * 60_000);
    expect(ids()).toEqual([]);
  });

  it('orders problems worst first, keeps when each began, and tells listeners of changes only', () => {
    const reports: string[][] = [];
    monitor.onChange((r) => reports.push(r.problems.map((p) => p.id)));
    facts.cache = { bytes: 19 * GiB, budgetBytes: 20 * GiB };
    monitor.check();
    const began = clock.now();
    pass(5_000);
    facts.readiness = { ready: false, reason: 'no runner' };
    const { problems } = monitor.check();
    expect(problems.map((p) => p.id)).toEqual(['runner-unavailable', 'cache-nearly-full']);
    expect(problems[1].since).toBe(began);
    monitor.check();
    expect(reports).toEqual([['cache-nearly-full'], ['runner-unavailable', 'cache-nearly-full']]);
  });

  it('checks on its own clock once started', () => {
    const reports: number[] = [];
    monitor.onChange((r) => reports.push(r.problems.length));
    monitor.start();
    facts.readiness = { ready: false, reason: 'no runner' };
    pass(2_000);
    expect(reports).toEqual([1]);
    monitor.stop();
  });
});
