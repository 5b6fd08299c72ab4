// Bazel invocations, built from events: every gRPC call's RequestMetadata
// (request.metadata) opens or refreshes one, and its actions' lifecycle events
// keep its counts. The Build Event Service adds what Bazel itself says (command
// line, targets, tests, exit status) under the same invocation id; either may
// come alone. Bounded by count and age, oldest finished first.
import { systemClock, type Clock } from '../clock';
import type { BuildEventSink, BuildFact } from '../common/build-event-facts';
import { BuildRecord } from './build-record';
import type { EventBus, EventOf } from '../events/event-bus';
import {
  INVOCATION_IDLE_MS,
  type InvocationCounts,
  type InvocationPage,
  type InvocationSummary,
  type RequestOrigin,
} from '../common/invocation-types';

export interface InvocationLimits {
  maxInvocations: number;
  maxAgeMs: number;
}

export const DEFAULT_INVOCATION_LIMITS: InvocationLimits = { maxInvocations: 2_000, maxAgeMs: 7 * 24 * 60 * 60_000 };

export class InvalidInvocationCursorError extends Error {}

const MAX_TARGETS_LISTED = 200;
/** Distinct targets counted per invocation; beyond this the count stops growing. */
const MAX_TARGETS_COUNTED = 100_000;
const MAX_MNEMONICS = 200;

interface Inv {
  seq: number;
  id: string;
  correlatedId?: string;
  toolName?: string;
  toolVersion?: string;
  startedAt: number;
  lastSeenAt: number;
  calls: number;
  counts: InvocationCounts;
  targets: Set<string>;
  targetCount: number;
  mnemonics: Map<string, number>;
  /** From the Build Event Service, when the build sends it. */
  build?: BuildRecord;
}

export class InvocationIndex implements BuildEventSink {
  private limits: InvocationLimits;
  /** Insertion order is first-seen order. */
  private readonly invocations = new Map<string, Inv>();
  /** Unfinished actions and whether they started, for the queued/running counts. */
  private readonly open = new Map<string, { inv: string; running: boolean }>();
  private readonly listeners = new Set<(id: string) => void>();
  private seq = 0;

  constructor(limits: Partial<InvocationLimits> = {}, private readonly clock: Clock = systemClock) {
    this.limits = { ...DEFAULT_INVOCATION_LIMITS, ...limits };
  }

  attach(bus: EventBus): () => void {
    const offs = [
      bus.on('request.metadata', (e) => this.touch(e.origin, e.at, 1)),
      bus.on('action.queued', (e) => this.onQueued(e)),
      bus.on('action.started', (e) => this.onStarted(e)),
      bus.on('action.finished', (e) => this.onFinished(e)),
    ];
    return () => offs.forEach((off) => off());
  }

  /** A new budget (Settings): invocations beyond it leave at once. */
  setLimits(limits: Partial<InvocationLimits>): void {
    this.limits = { ...this.limits, ...limits };
    this.prune();
  }

  /** Told the id of every invocation that changed (the journal saves it). */
  onChange(listener: (id: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Folds one build event (engine/bes) into its invocation, opening it when BES comes first or alone. */
  applyBuildEvent(invocationId: string, facts: BuildFact[], at: number): void {
    const inv = this.touch({ toolInvocationId: invocationId }, at, 0);
    if (!inv) return;
    inv.build ??= new BuildRecord();
    inv.build.apply(facts);
    // Bazel's own start time is earlier than its first remote call.
    const started = inv.build.startedAt;
    if (started !== undefined && started < inv.startedAt) inv.startedAt = started;
    const finished = inv.build.finishedAt;
    if (finished !== undefined && finished > inv.lastSeenAt) inv.lastSeenAt = finished;
    this.changed(inv.id);
  }

  get(id: string): InvocationSummary | undefined {
    const inv = this.invocations.get(id);
    return inv && this.summarize(inv);
  }

  /** Newest first. Throws InvalidInvocationCursorError for a cursor this server did not hand out. */
  list(query: { cursor?: string; limit?: number } = {}): InvocationPage {
    this.prune();
    const limit = Math.min(500, Math.max(1, query.limit ?? 50));
    let before = Infinity;
    if (query.cursor !== undefined) {
      before = Number(query.cursor);
      if (!/^\d+$/.test(query.cursor) || !Number.isSafeInteger(before)) throw new InvalidInvocationCursorError(`cursor "${query.cursor}" is not valid`);
    }
    const all = [...this.invocations.values()];
    const items: InvocationSummary[] = [];
    let nextCursor: string | undefined;
    for (let i = all.length - 1; i >= 0; i--) {
      const inv = all[i];
      if (inv.seq >= before) continue;
      if (items.length === limit) {
        nextCursor = String(all[i + 1].seq);
        break;
      }
      items.push(this.summarize(inv, { runs: false }));
    }
    return { items, nextCursor, total: this.invocations.size };
  }

  /** Every invocation, oldest first, as the journal saves them. */
  snapshot(): InvocationSummary[] {
    return [...this.invocations.values()].map((inv) => this.summarize(inv));
  }

  /**
   * Puts back invocations saved by an earlier run, oldest first, before live
   * events arrive. Their queued and running actions died with that run.
   */
  restore(saved: readonly InvocationSummary[]): void {
    for (const s of saved) {
      if (this.invocations.has(s.id)) continue;
      const targets = new Set(s.targets.slice(0, MAX_TARGETS_LISTED));
      this.invocations.set(s.id, {
        seq: ++this.seq,
        id: s.id,
        correlatedId: s.correlatedId,
        toolName: s.toolName,
        toolVersion: s.toolVersion,
        startedAt: s.startedAt,
        lastSeenAt: s.lastSeenAt,
        calls: s.calls,
        counts: { ...s.actions, queued: 0, running: 0 },
        targets,
        targetCount: Math.max(s.targetCount, targets.size),
        mnemonics: new Map(Object.entries(s.mnemonics ?? {})),
        build: s.build ? BuildRecord.from(s.build) : undefined,
      });
    }
    this.prune();
  }

  private touch(origin: RequestOrigin | undefined, at: number, calls: number): Inv | undefined {
    const id = origin?.toolInvocationId;
    if (!id) return undefined;
    let inv = this.invocations.get(id);
    if (!inv) {
      inv = {
        seq: ++this.seq,
        id,
        startedAt: at,
        lastSeenAt: at,
        calls: 0,
        counts: { executed: 0, cached: 0, failed: 0, queued: 0, running: 0 },
        targets: new Set(),
        targetCount: 0,
        mnemonics: new Map(),
      };
      this.invocations.set(id, inv);
      this.prune();
    }
    inv.calls += calls;
    inv.lastSeenAt = Math.max(inv.lastSeenAt, at);
    inv.startedAt = Math.min(inv.startedAt, at);
    inv.correlatedId ??= origin.correlatedInvocationsId;
    inv.toolName ??= origin.toolName;
    inv.toolVersion ??= origin.toolVersion;
    this.changed(inv.id);
    return inv;
  }

  private onQueued(e: EventOf<'action.queued'>): void {
    const origin = e.origin ?? (e.toolInvocationId ? { toolInvocationId: e.toolInvocationId } : undefined);
    const inv = this.touch(origin, e.at, 0);
    if (!inv) return;
    inv.counts.queued++;
    this.open.set(e.id, { inv: inv.id, running: false });
    const target = e.origin?.targetId ?? e.target;
    if (target && !inv.targets.has(target)) {
      if (inv.targets.size < MAX_TARGETS_LISTED) inv.targets.add(target);
      // Past the listed ones the count is an estimate: a repeated unlisted label counts again.
      if (inv.targetCount < MAX_TARGETS_COUNTED) inv.targetCount++;
    }
    const mnemonic = e.origin?.actionMnemonic ?? e.mnemonic;
    if (mnemonic && (inv.mnemonics.has(mnemonic) || inv.mnemonics.size < MAX_MNEMONICS)) {
      inv.mnemonics.set(mnemonic, (inv.mnemonics.get(mnemonic) ?? 0) + 1);
    }
    this.changed(inv.id);
  }

  private onStarted(e: EventOf<'action.started'>): void {
    const o = this.open.get(e.id);
    const inv = o && this.invocations.get(o.inv);
    if (!o || !inv || o.running) return;
    o.running = true;
    inv.counts.queued = Math.max(0, inv.counts.queued - 1);
    inv.counts.running++;
    inv.lastSeenAt = Math.max(inv.lastSeenAt, e.at);
    this.changed(inv.id);
  }

  private onFinished(e: EventOf<'action.finished'>): void {
    const o = this.open.get(e.id);
    if (!o) return;
    this.open.delete(e.id);
    const inv = this.invocations.get(o.inv);
    if (!inv) return;
    const c = inv.counts;
    if (o.running) c.running = Math.max(0, c.running - 1);
    else c.queued = Math.max(0, c.queued - 1);
    if (e.outcome === 'cached') c.cached++;
    else if (o.running) c.executed++;
    if (e.outcome === 'failure' || e.outcome === 'timeout' || e.outcome === 'error') c.failed++;
    inv.lastSeenAt = Math.max(inv.lastSeenAt, e.at);
    this.changed(inv.id);
  }

  private changed(id: string): void {
    for (const l of this.listeners) {
      try {
        l(id);
      } catch (err) {
        console.error('kiln: invocation listener failed:', err);
      }
    }
  }

  private prune(): void {
    const cutoff = this.clock.now() - this.limits.maxAgeMs;
    for (const inv of this.invocations.values()) {
      const over = this.invocations.size > this.limits.maxInvocations;
      if (!over && inv.lastSeenAt >= cutoff) break;
      if (this.isRunning(inv) && !over) continue;
      this.invocations.delete(inv.id);
    }
  }

  private isRunning(inv: Inv): boolean {
    if (inv.counts.queued + inv.counts.running > 0) return true;
    // With BES, Bazel says when the build ended; without it, quiet for a while counts as the end.
    if (inv.build?.finishedAt !== undefined) return false;
    return this.clock.now() - inv.lastSeenAt < INVOCATION_IDLE_MS;
  }

  private durationOf(inv: Inv, running: boolean): number {
    if (running) return Math.max(inv.lastSeenAt, this.clock.now()) - inv.startedAt;
    // Bazel's own start and finish when it sent both: one clock, even if Bazel's machine's is off from ours.
    const b = inv.build;
    if (b?.startedAt !== undefined && b.finishedAt !== undefined) return Math.max(0, b.finishedAt - b.startedAt);
    return (b?.finishedAt ?? inv.lastSeenAt) - inv.startedAt;
  }

  /** `runs: false` (the list) leaves out each test's runs: the page of one invocation has them. */
  private summarize(inv: Inv, opts: { runs: boolean } = { runs: true }): InvocationSummary {
    const running = this.isRunning(inv);
    return {
      id: inv.id,
      correlatedId: inv.correlatedId,
      toolName: inv.toolName,
      toolVersion: inv.toolVersion,
      startedAt: inv.startedAt,
      lastSeenAt: inv.lastSeenAt,
      durationMs: this.durationOf(inv, running),
      state: running ? 'running' : 'finished',
      actions: { ...inv.counts },
      calls: inv.calls,
      targets: [...inv.targets],
      targetCount: inv.targetCount,
      mnemonics: Object.fromEntries(inv.mnemonics),
      ...(inv.build ? { build: inv.build.summary(opts) } : {}),
    };
  }
}
