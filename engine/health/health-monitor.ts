// Names what is wrong with this Kiln, in words a person can act on, worst
// first: execution off while Bazel waits, the farm paused, a queue far beyond
// the slots, every recent action failing, one infrastructure error again and
// again, a full cache or disk, a runner that is not ready (a sandbox asked for
// but missing), a clock jump. Each problem appears when its condition holds
// and goes when it stops; the tray and the dashboard show the worst one.
// Facts come from events and a few small read-outs; the monitor checks them on
// a timer of its own clock and tells listeners when the report changes.
import type { ActionOutcome } from '../common/action-vocabulary';
import { worstFirst, type HealthProblem, type HealthReport, type HealthSeverity } from '../common/farm-modes';
import type { Clock } from '../clock';
import type { EventOf, KilnEventType } from '../events/event-bus';

/** What the monitor reads each time it checks. */
export interface HealthFacts {
  executionEnabled(): boolean;
  /** Queued actions, and the slots taking work now. */
  queue(): { depth: number; slots: number };
  /** Present while the farm is paused. */
  paused(): { until?: number } | undefined;
  /** The executor (and its runner) can run actions; `reason` says why not. */
  readiness(): { ready: boolean; reason?: string };
  cache(): { bytes: number; budgetBytes: number };
  /** The disk holding the data folder; null before the first sample. */
  disk(): { usedBytes: number; totalBytes: number } | null;
  /** A clock that never jumps (performance.now()), to notice the wall clock jumping. */
  monotonic(): number;
  /** Present when the configuration asks for a sandbox (LAN mode, or `sandbox: on`); `enabled` false says it could not be had. */
  sandbox?(): { enabled: boolean; reason: string } | undefined;
  /** Present with an upstream (--upstream); `reachable` false while it cannot be used. */
  upstream?(): { url: string; reachable?: boolean; problem?: string } | undefined;
  /** Present with peers (--peers); each one's name and whether its status answers. */
  peers?(): { name: string; reachable?: boolean; problem?: string }[] | undefined;
}

export interface HealthEvents {
  on<T extends KilnEventType>(type: T, listener: (event: EventOf<T>) => void): () => void;
}

export interface HealthTuning {
  /** "The last N actions all failed". */
  failureStreak: number;
  /** The same infrastructure error this many times in a row. */
  sameErrorCount: number;
  /** Queue deeper than this many times the slots… */
  backlogFactor: number;
  /** …for this long. */
  backlogMs: number;
  /** Execute refused (execution off) this recently counts as Bazel waiting. */
  refusedWindowMs: number;
  /** Cache holding more than this share of its budget. */
  cacheFullRatio: number;
  /** Disk free below this share, or below diskFreeMinBytes. */
  diskFreeRatio: number;
  diskFreeMinBytes: number;
  /** A wall-clock jump larger than this… */
  clockJumpMs: number;
  /** …is reported for this long. */
  clockJumpShowMs: number;
  /** How often check() runs on its own once started. */
  everyMs: number;
}

export const DEFAULT_HEALTH_TUNING: HealthTuning = {
  failureStreak: 10,
  sameErrorCount: 3,
  backlogFactor: 10,
  backlogMs: 60_000,
  refusedWindowMs: 5 * 60_000,
  cacheFullRatio: 0.9,
  diskFreeRatio: 0.05,
  diskFreeMinBytes: 1024 ** 3,
  clockJumpMs: 30_000,
  clockJumpShowMs: 10 * 60_000,
  everyMs: 2_000,
};

const FAILED: ReadonlySet<ActionOutcome> = new Set(['failure', 'timeout', 'error']);

type Found = Omit<HealthProblem, 'since'>;

export class HealthMonitor {
  private readonly tuning: HealthTuning;
  private readonly since = new Map<string, number>();
  /** Outcomes of recent actions that ran (not cached, not cancelled), newest last. */
  private recent: { outcome: ActionOutcome; exitCode?: number; message?: string }[] = [];
  private refused: number[] = [];
  private backlogSince?: number;
  private lastTick?: { wall: number; mono: number };
  private jump?: { at: number; byMs: number };
  private report: HealthReport;
  private readonly listeners = new Set<(report: HealthReport) => void>();
  private readonly offs: (() => void)[];
  private timer?: { cancel(): void };

  constructor(
    events: HealthEvents,
    private readonly facts: HealthFacts,
    private readonly clock: Clock,
    tuning: Partial<HealthTuning> = {},
  ) {
    this.tuning = { ...DEFAULT_HEALTH_TUNING, ...tuning };
    this.report = { at: clock.now(), problems: [] };
    this.offs = [
      events.on('action.finished', (e) => {
        if (e.outcome === 'cached' || e.outcome === 'cancelled') return;
        this.recent.push({ outcome: e.outcome, exitCode: e.exitCode, message: e.message });
        const keep = Math.max(this.tuning.failureStreak, this.tuning.sameErrorCount);
        if (this.recent.length > keep) this.recent.splice(0, this.recent.length - keep);
      }),
      events.on('execution.refused', (e) => {
        if (e.reason === 'off') this.refused.push(e.at);
      }),
      events.on('execution.toggled', (e) => {
        if (e.enabled) this.refused = [];
      }),
    ];
  }

  /** Checks every `everyMs` until stopped. */
  start(): void {
    const tick = () => {
      this.check();
      this.timer = this.clock.setTimeout(tick, this.tuning.everyMs);
    };
    tick();
  }

  stop(): void {
    this.timer?.cancel();
    this.offs.forEach((off) => off());
  }

  /** The last report, without checking again. */
  current(): HealthReport {
    return this.report;
  }

  /** Called with each report that differs from the one before. */
  onChange(listener: (report: HealthReport) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Looks at everything now and returns the problems, worst first. */
  check(): HealthReport {
    const now = this.clock.now();
    this.noticeClockJump(now);
    const found = this.find(now);
    for (const id of [...this.since.keys()]) if (!found.some((p) => p.id === id)) this.since.delete(id);
    const problems = found.map((p) => {
      if (!this.since.has(p.id)) this.since.set(p.id, now);
      return { ...p, since: this.since.get(p.id)! };
    });
    problems.sort(worstFirst);
    const changed = JSON.stringify(problems) !== JSON.stringify(this.report.problems);
    this.report = { at: now, problems };
    if (changed) for (const l of [...this.listeners]) l(this.report);
    return this.report;
  }

  private find(now: number): Found[] {
    const t = this.tuning;
    const out: Found[] = [];
    const add = (id: string, severity: HealthSeverity, title: string, message: string) => out.push({ id, severity, title, message });
    const queue = this.facts.queue();
    const paused = this.facts.paused();

    this.refused = this.refused.filter((at) => now - at <= t.refusedWindowMs);
    if (!this.facts.executionEnabled() && (queue.depth > 0 || this.refused.length > 0)) {
      const calls = this.refused.length;
      add(
        'execution-off',
        'error',
        'Execution is off while Bazel waits',
        `Execution is off, and ${calls ? `${calls} Execute call${calls === 1 ? ' was' : 's were'} refused in the last ${minutes(t.refusedWindowMs)}` : `${queue.depth} action(s) wait`}. ` +
          'Turn execution on in the tray or the dashboard (or POST /api/execution {"enabled": true}); the cache keeps serving meanwhile.',
      );
    }
    if (paused) {
      const until = paused.until === undefined ? 'until you resume it' : `until ${clockTime(paused.until)}`;
      add(
        'farm-paused',
        'warning',
        'No slots: the farm is paused',
        `The farm is paused ${until}; ${queue.depth} queued action(s) wait and running ones are stopped. Resume it in the tray or the dashboard (or DELETE /api/pause).`,
      );
    }

    const backlogged = !paused && queue.slots > 0 && queue.depth > t.backlogFactor * queue.slots;
    this.backlogSince = backlogged ? (this.backlogSince ?? now) : undefined;
    if (this.backlogSince !== undefined && now - this.backlogSince >= t.backlogMs) {
      add(
        'queue-backlog',
        'warning',
        'Queue far beyond the slots',
        `${queue.depth} actions wait for ${queue.slots} slot(s), more than ${t.backlogFactor}× for over ${minutes(now - this.backlogSince)}. ` +
          'Switch to all-out mode or add slots in Settings, or lower Bazel\'s --jobs.',
      );
    }

    const streak = this.recent.slice(-t.failureStreak);
    if (streak.length >= t.failureStreak && streak.every((r) => FAILED.has(r.outcome))) {
      const last = streak[streak.length - 1];
      const how = last.message ?? (last.exitCode !== undefined ? `exit code ${last.exitCode}` : last.outcome);
      add(
        'all-failing',
        'error',
        'Every recent action failed',
        `The last ${t.failureStreak} actions all failed (the last: ${how}). Open one in the dashboard's Actions view and read its stderr; ` +
          'if they fail only on Kiln, compare the environment and tools with a local build.',
      );
    }

    const errors = this.recent.slice(-t.sameErrorCount);
    if (errors.length >= t.sameErrorCount && errors.every((r) => r.outcome === 'error' && r.message && r.message === errors[0].message)) {
      add(
        'infrastructure-error',
        'error',
        'The same infrastructure error again and again',
        `The last ${t.sameErrorCount} actions failed with the same error from Kiln itself, not from the build: "${errors[0].message}". ` +
          'Fix what it names (disk, permissions, the runner), or restart Kiln if it persists.',
      );
    }

    const readiness = this.facts.readiness();
    if (!readiness.ready) {
      add('runner-unavailable', 'error', 'Actions cannot run here', `${readiness.reason ?? 'The executor is not ready'}. Actions wait until it is.`);
    }

    const sandbox = this.facts.sandbox?.();
    if (sandbox && !sandbox.enabled) {
      add(
        'sandbox-unavailable',
        'error',
        'Actions run without the sandbox',
        `The sandbox was asked for but is off: ${sandbox.reason}. Actions can read this machine's files and reach its network; install bubblewrap (or fix what the reason names) and restart Kiln.`,
      );
    }

    const upstream = this.facts.upstream?.();
    if (upstream && upstream.reachable === false) {
      add(
        'upstream-unreachable',
        'warning',
        'The upstream cannot be used',
        `${upstream.url} cannot be used${upstream.problem ? `: ${upstream.problem}` : ''}. Actions run here and the cache serves from this machine until it answers again; check the address, the network and its credentials.`,
      );
    }

    // Desks come and go: a peer that is off is worth knowing, not an alarm.
    const peers = this.facts.peers?.() ?? [];
    const down = peers.filter((p) => p.reachable === false);
    if (down.length) {
      const named = down.map((p) => `${p.name.replace(/^peer:/, '')}${p.problem ? ` (${p.problem})` : ''}`).join('; ');
      add(
        'peers-unreachable',
        'info',
        down.length === 1 ? 'A peer cannot be used' : `${down.length} peers cannot be used`,
        `${down.length} of ${peers.length} peer Kilns cannot be used: ${named}. Their share runs here and on the others until they answer again; check that they run, the network, and that the token they made for this Kiln is still valid.`,
      );
    }

    const disk = this.facts.disk();
    if (disk && disk.totalBytes > 0) {
      const free = disk.totalBytes - disk.usedBytes;
      if (free < t.diskFreeMinBytes || free / disk.totalBytes < t.diskFreeRatio) {
        add(
          'disk-nearly-full',
          'error',
          'The disk is nearly full',
          `Only ${gib(free)} of ${gib(disk.totalBytes)} is free on the disk holding Kiln's data. Free some space, or lower the cache budget in Settings so Kiln evicts down to it.`,
        );
      }
    }
    const cache = this.facts.cache();
    if (cache.budgetBytes > 0 && cache.bytes > t.cacheFullRatio * cache.budgetBytes) {
      add(
        'cache-nearly-full',
        'info',
        'The cache is nearly at its budget',
        `The cache holds ${Math.round((100 * cache.bytes) / cache.budgetBytes)}% of its ${gib(cache.budgetBytes)} budget, so the least recently used blobs are being evicted. ` +
          'Raise the cache budget in Settings if builds miss the cache more than they should.',
      );
    }

    if (this.jump && now - this.jump.at <= t.clockJumpShowMs) {
      add(
        'clock-jump',
        'warning',
        'The system clock jumped',
        `The system clock jumped ${this.jump.byMs > 0 ? 'forward' : 'back'} by ${seconds(Math.abs(this.jump.byMs))} at ${clockTime(this.jump.at)} (a suspend, NTP or a manual change). ` +
          'Action timings and timeouts around then may be wrong; nothing needs doing unless it keeps happening.',
      );
    }
    return out;
  }

  private noticeClockJump(now: number): void {
    const mono = this.facts.monotonic();
    const last = this.lastTick;
    this.lastTick = { wall: now, mono };
    if (!last) return;
    const byMs = now - last.wall - (mono - last.mono);
    if (Math.abs(byMs) > this.tuning.clockJumpMs) this.jump = { at: now, byMs };
  }
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

function minutes(ms: number): string {
  const m = Math.round(ms / 60_000);
  return m <= 1 ? 'a minute' : `${m} minutes`;
}

function seconds(ms: number): string {
  return ms >= 120_000 ? `${Math.round(ms / 60_000)} minutes` : `${Math.round(ms / 1000)} seconds`;
}

function clockTime(at: number): string {
  return new Date(at).toISOString().slice(11, 16) + ' UTC';
}
