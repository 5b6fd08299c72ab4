// Recent actions for the dashboard, built from events. Bounded by count,
// estimated bytes and age; the oldest finished actions go first, and queued or
// running ones are only dropped if the count bound is exceeded by them alone.
import { systemClock, type Clock } from '../clock';
import type { EventBus, EventOf } from '../events/event-bus';
import { actionRole } from '../common/action-role';
import type { ActionChangeKind, ActionDetail, ActionOutcome, ActionPage, ActionState, ActionSummary } from '../common/api-types';

export interface HistoryLimits {
  maxActions: number;
  /** Estimated memory of all records. */
  maxBytes: number;
  maxAgeMs: number;
}

export const DEFAULT_HISTORY_LIMITS: HistoryLimits = {
  maxActions: 10_000,
  maxBytes: 64 * 1024 ** 2,
  maxAgeMs: 24 * 60 * 60_000,
};

export interface HistoryQuery {
  state?: ActionState;
  outcome?: ActionOutcome;
  /** Case-insensitive substring of id, mnemonic, target, argv, digest. */
  q?: string;
  /** Only the actions of this Bazel invocation (tool_invocation_id). */
  invocation?: string;
  cursor?: string;
  /** Default 50, at most 500. */
  limit?: number;
}

/** `action` is the summary as it stood when the change happened, as long as it is read before the listener returns. */
export type HistoryChange = { readonly kind: ActionChangeKind; readonly action: ActionSummary };

export class InvalidCursorError extends Error {}

/** Caps that keep one pathological action (a huge argv or env) from pushing out the rest. */
const MAX_ARGV = 1_000;
const MAX_ENV = 500;
const MAX_OUTPUTS = 1_000;
const MAX_STRING = 8 * 1024;
const MAX_CONTROLS = 50;

type Rec = Omit<ActionDetail, 'logs'> & { seq: number; bytes: number };

export class ActionHistory {
  private readonly limits: HistoryLimits;
  private readonly clock: Clock;
  /** Insertion order is queue order: oldest first. */
  private readonly records = new Map<string, Rec>();
  private bytes = 0;
  private seq = 0;
  private lastAgeScan = -Infinity;
  private readonly listeners = new Set<(c: HistoryChange) => void>();

  constructor(limits: Partial<HistoryLimits> = {}, clock: Clock = systemClock) {
    this.limits = { ...DEFAULT_HISTORY_LIMITS, ...limits };
    this.clock = clock;
  }

  attach(bus: EventBus): () => void {
    const offs = [
      bus.on('action.queued', (e) => this.onQueued(e)),
      bus.on('action.started', (e) => this.update(e.id, 'started', (r) => {
        r.state = 'running';
        r.startedAt = e.at;
        r.slot = e.slot;
        r.stage = 'fetching-inputs';
      })),
      bus.on('action.stage', (e) => this.update(e.id, 'stage', (r) => {
        r.stage = e.stage;
        // Known before the run (the input tree is read first), so a running action's detail shows them.
        if (e.inputFiles !== undefined) r.inputFiles = e.inputFiles;
        if (e.inputBytes !== undefined) r.inputBytes = e.inputBytes;
      })),
      bus.on('action.finished', (e) => this.onFinished(e)),
      bus.on('action.control', (e) => this.update(e.id, 'control', (r) => {
        const { at, control, signal, by, result } = e;
        // Bounded like everything else here: a script sending signals in a loop keeps the last few.
        r.controls = [...(r.controls ?? []), { at, control, signal, by, result }].slice(-MAX_CONTROLS);
        if (control === 'signal' && result.startsWith('paused')) r.stopped = true;
        if (control === 'signal' && result.startsWith('resumed')) r.stopped = undefined;
      })),
    ];
    return () => offs.forEach((off) => off());
  }

  /** Lifecycle changes, for the SSE channel. */
  onChange(listener: (c: HistoryChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(id: string): Omit<ActionDetail, 'logs'> | undefined {
    const r = this.records.get(id);
    return r && this.detail(r);
  }

  summary(id: string): ActionSummary | undefined {
    const r = this.records.get(id);
    return r && this.summarize(r);
  }

  /** Newest first. Throws InvalidCursorError for a cursor this server did not hand out. */
  list(query: HistoryQuery = {}): ActionPage {
    this.prune();
    const limit = Math.min(500, Math.max(1, query.limit ?? 50));
    let before = Infinity;
    if (query.cursor !== undefined) {
      before = Number(query.cursor);
      if (!/^\d+$/.test(query.cursor) || !Number.isSafeInteger(before)) throw new InvalidCursorError(`cursor "${query.cursor}" is not valid`);
    }
    const q = query.q?.trim().toLowerCase();
    const all = [...this.records.values()];
    const items: (ActionSummary & { seq: number })[] = [];
    let total = 0;
    let nextCursor: string | undefined;
    for (let i = all.length - 1; i >= 0; i--) {
      const r = all[i];
      if (query.state && r.state !== query.state) continue;
      if (query.outcome && r.outcome !== query.outcome) continue;
      if (query.invocation !== undefined && r.invocationId !== query.invocation) continue;
      if (q && !matches(r, q)) continue;
      total++;
      if (r.seq >= before) continue;
      if (items.length < limit) items.push(this.summarize(r));
      else nextCursor ??= String(items[items.length - 1].seq);
    }
    return { items: items.map(stripSeq), nextCursor, total };
  }

  /**
   * Puts back finished actions saved by an earlier run (engine/invocations'
   * journal), oldest first, before any live event arrives. Unfinished ones
   * are skipped: their runs died with the process that ran them.
   */
  restore(details: readonly Omit<ActionDetail, 'logs'>[]): void {
    for (const d of details) {
      if (d.state !== 'finished' || this.records.has(d.id)) continue;
      const r: Rec = { ...d, seq: ++this.seq, bytes: 0 };
      r.bytes = estimate(r);
      this.records.set(r.id, r);
      this.bytes += r.bytes;
    }
    this.prune();
  }

  /** Every finished action it still holds, oldest first (what a restart should get back). */
  finished(): Omit<ActionDetail, 'logs'>[] {
    this.prune();
    return [...this.records.values()].filter((r) => r.state === 'finished').map((r) => this.detail(r));
  }

  stats(): { actions: number; bytes: number } {
    return { actions: this.records.size, bytes: this.bytes };
  }

  private onQueued(e: EventOf<'action.queued'>): void {
    if (this.records.has(e.id)) return;
    const d = e.details;
    const env = Object.fromEntries(Object.entries(d?.env ?? {}).slice(0, MAX_ENV).map(([k, v]) => [cap(k), cap(v)]));
    const argv = (d?.argv ?? []).slice(0, MAX_ARGV).map(cap);
    const r: Rec = {
      seq: ++this.seq,
      bytes: 0,
      id: e.id,
      state: 'queued',
      cached: false,
      mnemonic: e.mnemonic && cap(e.mnemonic),
      target: e.target && cap(e.target),
      argv0: argv[0],
      invocationId: e.origin?.toolInvocationId ?? e.toolInvocationId,
      configurationId: e.origin?.configurationId,
      role: actionRole(argv),
      stage: 'queued',
      queuedAt: e.at,
      instance: e.instance,
      actionDigest: e.actionDigest,
      argv,
      env,
      platform: { ...(d?.platform ?? {}) },
      ignoredPlatform: d?.ignoredPlatform,
      workingDirectory: d?.workingDirectory ?? '',
      outputPaths: (d?.outputPaths ?? []).slice(0, MAX_OUTPUTS).map(cap),
      timeoutMs: d?.timeoutMs,
      doNotCache: d?.doNotCache,
      outputs: [],
    };
    r.bytes = estimate(r);
    this.records.set(e.id, r);
    this.bytes += r.bytes;
    this.emit('queued', r);
    this.prune();
  }

  private onFinished(e: EventOf<'action.finished'>): void {
    this.update(e.id, 'finished', (r) => {
      r.state = 'finished';
      r.stage = 'finished';
      r.stopped = undefined;
      r.outcome = e.outcome;
      r.cached = e.outcome === 'cached';
      r.exitCode = e.exitCode;
      r.finishedAt = e.at;
      r.durationMs = e.timing?.totalMs ?? e.at - r.queuedAt;
      r.timing = e.timing;
      r.inputFiles = e.inputFiles ?? r.inputFiles;
      r.inputBytes = e.inputBytes ?? r.inputBytes;
      r.ranOn = e.ranOn;
      r.outputs = (e.outputs ?? []).slice(0, MAX_OUTPUTS).map((o) => ({ ...o, path: cap(o.path) }));
      r.stdoutDigest = e.stdoutDigest;
      r.stderrDigest = e.stderrDigest;
      r.message = e.message && cap(e.message);
    });
    this.prune();
  }

  private update(id: string, kind: HistoryChange['kind'], fn: (r: Rec) => void): void {
    const r = this.records.get(id);
    if (!r) return;
    fn(r);
    const bytes = estimate(r);
    this.bytes += bytes - r.bytes;
    r.bytes = bytes;
    this.emit(kind, r);
  }

  private emit(kind: HistoryChange['kind'], r: Rec): void {
    if (this.listeners.size === 0) return;
    // Made when first read, then kept: the journal reads only finished changes, and the
    // dashboard's channel none while no window is open. A listener reads it before
    // returning; the record goes on changing after that.
    let summary: ActionSummary | undefined;
    const summarize = () => stripSeq(this.summarize(r));
    const change: HistoryChange = {
      kind,
      get action() {
        return (summary ??= summarize());
      },
    };
    for (const l of this.listeners) {
      try {
        l(change);
      } catch (err) {
        console.error('kiln: history listener failed:', err);
      }
    }
  }

  private prune(): void {
    const { maxActions, maxBytes, maxAgeMs } = this.limits;
    const now = this.clock.now();
    const over = () => this.records.size > maxActions || this.bytes > maxBytes;
    // Age is checked at most once a second so a burst of events stays O(1) each.
    const ageDue = now - this.lastAgeScan >= 1_000;
    if (!over() && !ageDue) return;
    if (ageDue) this.lastAgeScan = now;
    const cutoff = now - maxAgeMs;
    // Finished actions first, oldest first. Records are in queue order, and none
    // queued since the cutoff can have finished before it: the age check stops at the
    // first such record instead of walking all 10,000 every second (0.1 ms of the
    // engine's CPU per action in a steady build).
    for (const r of this.records.values()) {
      if (!over() && (!ageDue || r.queuedAt >= cutoff)) break;
      if (r.state === 'finished' && (over() || (r.finishedAt ?? now) < cutoff)) this.drop(r);
    }
    // Still over only if unfinished actions alone exceed the bounds.
    for (const r of this.records.values()) {
      if (!over()) break;
      this.drop(r);
    }
  }

  private drop(r: Rec): void {
    this.records.delete(r.id);
    this.bytes -= r.bytes;
  }

  private summarize(r: Rec): ActionSummary & { seq: number } {
    const now = this.clock.now();
    return {
      seq: r.seq,
      id: r.id,
      state: r.state,
      outcome: r.outcome,
      cached: r.cached,
      mnemonic: r.mnemonic,
      target: r.target,
      argv0: r.argv0,
      exitCode: r.exitCode,
      stage: r.stage,
      queuedAt: r.queuedAt,
      startedAt: r.startedAt,
      finishedAt: r.finishedAt,
      durationMs: r.durationMs ?? now - r.queuedAt,
      instance: r.instance,
      actionDigest: r.actionDigest,
      slot: r.slot,
      invocationId: r.invocationId,
      role: r.role,
      configurationId: r.configurationId,
      stopped: r.stopped,
    };
  }

  private detail(r: Rec): Omit<ActionDetail, 'logs'> {
    const { seq: _seq, bytes: _bytes, ...rest } = r;
    return { ...rest, durationMs: r.durationMs ?? this.clock.now() - r.queuedAt };
  }
}

function stripSeq(s: ActionSummary & { seq?: number }): ActionSummary {
  const { seq: _seq, ...rest } = s;
  return rest;
}

function matches(r: Rec, q: string): boolean {
  const fields = [r.id, r.mnemonic, r.target, r.actionDigest, r.instance, r.message];
  if (fields.some((f) => f?.toLowerCase().includes(q))) return true;
  return r.argv.some((a) => a.toLowerCase().includes(q));
}

function cap(s: string): string {
  return s.length > MAX_STRING ? `${s.slice(0, MAX_STRING)}…` : s;
}

/** Rough in-memory size: UTF-16 strings plus per-object overhead. */
function estimate(r: Rec): number {
  let n = 600;
  const str = (s: string | undefined) => (n += s ? s.length * 2 + 16 : 0);
  [r.id, r.mnemonic, r.target, r.actionDigest, r.instance, r.workingDirectory, r.message, r.stdoutDigest, r.stderrDigest].forEach(str);
  r.argv.forEach(str);
  r.outputPaths.forEach(str);
  for (const [k, v] of Object.entries(r.env)) str(k), str(v);
  for (const [k, v] of Object.entries(r.platform)) str(k), str(v);
  for (const o of r.outputs) str(o.path), (n += 48);
  for (const c of r.controls ?? []) str(c.by), str(c.result), (n += 48);
  return n;
}
