// Engine metrics derived from the EventBus only (nothing polls the scheduler).
// Memory is constant: counters, fixed histograms and ring-buffered windows, plus
// the set of queued/running actions, which the scheduler's queue bound limits.
import { systemClock, type Clock } from '../clock';
import { ACTION_OUTCOMES, type ActionOutcome } from '../common/action-vocabulary';
import type { HitRate, HostSnapshot, MetricsSnapshot, SlotSnapshot } from '../common/api-types';
import type { EventBus, EventOf } from '../events/event-bus';
import type { StoreStats } from '../store/blob-store';
import { Histogram } from './histogram';
import type { HostSampler } from './host-sampler';
import { FARM_MODES, type FarmStatus } from '../common/farm-modes';
import { PromText } from './prometheus';
import { TimeBuckets } from './time-buckets';
import { SlotUtilization } from './utilization';

export interface MetricsOptions {
  /**
   * Worker slots known up front (more appear as worker.slot events name them). Follows
   * settings.changed events afterwards, or setConcurrency.
   */
  concurrency: number;
  /** The store's live numbers (size, blobs, budget). */
  storeStats: () => Pick<StoreStats, 'bytes' | 'blobs' | 'budgetBytes'>;
  host?: HostSampler;
  executionEnabled?: boolean;
  clock?: Clock;
}

/** Safety net in case finish events go missing for actions we track. */
const MAX_TRACKED_ACTIONS = 100_000;

interface Tracked {
  queuedAt: number;
  startedAt?: number;
  mnemonic?: string;
  target?: string;
  argv0?: string;
}

interface Slot {
  busy: boolean;
  since: number;
  actionId?: string;
  util: SlotUtilization;
}

class Counter {
  hits = 0;
  misses = 0;
  rate(): HitRate {
    const n = this.hits + this.misses;
    return { hits: this.hits, misses: this.misses, rate: n ? this.hits / n : null };
  }
}

export class MetricsCollector {
  private readonly clock: Clock;
  private readonly actions = new Map<string, Tracked>();
  private queued = 0;
  private running = 0;
  private readonly slots = new Map<number, Slot>();
  private readonly ac = new Counter();
  private readonly cas = new Counter();
  private bytesIn = 0;
  private bytesOut = 0;
  private readonly inWindow = new TimeBuckets(1_000, 11);
  private readonly outWindow = new TimeBuckets(1_000, 11);
  private readonly finishedWindow = new TimeBuckets(1_000, 61);
  private finishedTotal = 0;
  private readonly byOutcome = Object.fromEntries(ACTION_OUTCOMES.map((o) => [o, 0])) as Record<ActionOutcome, number>;
  private readonly duration = new Histogram();
  private readonly queueTime = new Histogram();
  private evictions = 0;
  private readonly authRejections = { grpc: 0, http: 0 };
  private executionEnabled: boolean;
  private concurrency: number;
  /** The polite farm's latest state, once it has one. */
  private farm?: FarmStatus;
  private readonly unsubscribe: () => void;

  constructor(
    bus: EventBus,
    private readonly opts: MetricsOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.executionEnabled = opts.executionEnabled ?? true;
    this.concurrency = opts.concurrency;
    for (let i = 0; i < opts.concurrency; i++) this.slot(i);
    const offs = [
      bus.on('action.queued', (e) => this.onQueued(e)),
      bus.on('action.started', (e) => this.onStarted(e)),
      bus.on('action.finished', (e) => this.onFinished(e)),
      bus.on('worker.slot', (e) => this.onSlot(e)),
      bus.on('cache.lookup', (e) => {
        const c = e.store === 'ac' ? this.ac : this.cas;
        if (e.hit) c.hits += e.count ?? 1;
        else c.misses += e.count ?? 1;
      }),
      bus.on('blob.written', (e) => {
        this.bytesIn += e.digest.size;
        this.inWindow.add(e.at, e.digest.size);
      }),
      bus.on('blob.read', (e) => {
        this.bytesOut += e.bytes;
        this.outWindow.add(e.at, e.bytes);
      }),
      bus.on('blob.evicted', () => void this.evictions++),
      bus.on('auth.rejected', (e) => void this.authRejections[e.transport]++),
      bus.on('execution.toggled', (e) => void (this.executionEnabled = e.enabled)),
      bus.on('settings.changed', (e) => this.setConcurrency(e.concurrency)),
      bus.on('farm.changed', (e) => void (this.farm = e.status)),
    ];
    this.unsubscribe = () => offs.forEach((off) => off());
  }

  snapshot(): MetricsSnapshot {
    const now = this.clock.now();
    const slots: SlotSnapshot[] = [...this.slots.entries()]
      .sort(([a], [b]) => a - b)
      .map(([slot, s]) => {
        const action = s.actionId ? this.actions.get(s.actionId) : undefined;
        return {
          slot,
          busy: s.busy,
          current:
            s.busy && s.actionId
              ? { id: s.actionId, mnemonic: action?.mnemonic, target: action?.target, argv0: action?.argv0, since: s.since }
              : undefined,
          utilization1m: s.util.fraction(now, '1m'),
          utilization1h: s.util.fraction(now, '1h'),
        };
      });
    const mean = (k: 'utilization1m' | 'utilization1h') => (slots.length ? slots.reduce((a, s) => a + s[k], 0) / slots.length : 0);
    const store = this.opts.storeStats();
    return {
      at: now,
      queueDepth: this.queued,
      running: this.running,
      slots,
      utilization1m: mean('utilization1m'),
      utilization1h: mean('utilization1h'),
      actionCache: this.ac.rate(),
      cas: this.cas.rate(),
      bytes: {
        inTotal: this.bytesIn,
        outTotal: this.bytesOut,
        inRate: this.inWindow.sum(now, 10_000) / 10,
        outRate: this.outWindow.sum(now, 10_000) / 10,
      },
      store: { bytes: store.bytes, budgetBytes: store.budgetBytes, blobs: store.blobs, evictions: this.evictions },
      actions: {
        perSecond: this.finishedWindow.sum(now, 60_000) / 60,
        finishedTotal: this.finishedTotal,
        byOutcome: { ...this.byOutcome },
      },
      histograms: { durationMs: this.duration.snapshot(), queueTimeMs: this.queueTime.snapshot() },
      host: this.opts.host?.latest() ?? null,
      authRejections: this.authRejections.grpc + this.authRejections.http,
      executionEnabled: this.executionEnabled,
    };
  }

  /** The host's latest background sample (disk, CPU), without building a whole snapshot. */
  hostSample(): HostSnapshot | null {
    return this.opts.host?.latest() ?? null;
  }

  /** Prometheus text exposition of the same numbers (`kiln_*`, base units). */
  prometheus(): string {
    const s = this.snapshot();
    const p = new PromText()
      .gauge('kiln_queue_depth', 'Actions waiting for a worker slot.', s.queueDepth)
      .gauge('kiln_actions_running', 'Actions running now.', s.running)
      .gauge('kiln_execution_enabled', '1 when the execution switch is on.', s.executionEnabled ? 1 : 0)
      .gauge('kiln_slot_busy', '1 when the worker slot runs an action.', s.slots.map((x) => [{ slot: String(x.slot) }, x.busy ? 1 : 0]))
      .gauge(
        'kiln_slot_utilization_ratio',
        'Time-weighted busy fraction of a worker slot.',
        s.slots.flatMap((x) => [
          [{ slot: String(x.slot), window: '1m' }, x.utilization1m],
          [{ slot: String(x.slot), window: '1h' }, x.utilization1h],
        ]),
      )
      .counter('kiln_cache_lookups_total', 'Action cache and CAS (FindMissingBlobs) lookups by result.', [
        [{ store: 'ac', result: 'hit' }, s.actionCache.hits],
        [{ store: 'ac', result: 'miss' }, s.actionCache.misses],
        [{ store: 'cas', result: 'hit' }, s.cas.hits],
        [{ store: 'cas', result: 'miss' }, s.cas.misses],
      ])
      .counter('kiln_cas_received_bytes_total', 'Bytes of blobs written to the CAS.', s.bytes.inTotal)
      .counter('kiln_cas_sent_bytes_total', 'Bytes of blobs read from the CAS.', s.bytes.outTotal)
      .gauge('kiln_store_bytes', 'Bytes stored in the CAS.', s.store.bytes)
      .gauge('kiln_store_budget_bytes', 'CAS size budget.', s.store.budgetBytes)
      .gauge('kiln_store_blobs', 'Blobs stored in the CAS.', s.store.blobs)
      .counter('kiln_store_evictions_total', 'Blobs evicted to stay within the budget.', s.store.evictions)
      .counter('kiln_actions_finished_total', 'Finished actions by outcome.', ACTION_OUTCOMES.map((o) => [{ outcome: o }, s.actions.byOutcome[o]]))
      .histogram('kiln_action_duration_seconds', 'Time from queued to finished.', s.histograms.durationMs)
      .histogram('kiln_action_queue_seconds', 'Time from queued to started.', s.histograms.queueTimeMs)
      .counter('kiln_auth_rejections_total', 'Requests refused for a missing or wrong token.', [
        [{ transport: 'grpc' }, this.authRejections.grpc],
        [{ transport: 'http' }, this.authRejections.http],
      ]);
    if (this.farm) {
      const f = this.farm;
      p.gauge('kiln_farm_target_slots', 'Worker slots the farm lets take work now (0 while paused).', f.slots)
        .gauge('kiln_farm_max_slots', 'The most slots the farm mode may use.', f.maxSlots)
        .gauge('kiln_farm_paused', '1 while the farm is paused.', f.paused ? 1 : 0)
        .gauge('kiln_farm_mode', '1 for the farm mode in use.', FARM_MODES.map((m) => [{ mode: m }, m === f.mode ? 1 : 0]));
    }
    if (s.host) {
      p.gauge('kiln_host_cpu_ratio', 'Host CPU load in [0, 1].', s.host.cpu)
        .gauge('kiln_host_memory_used_bytes', 'Host memory in use.', s.host.memUsedBytes)
        .gauge('kiln_host_memory_total_bytes', 'Host memory.', s.host.memTotalBytes)
        .gauge('kiln_host_disk_used_bytes', 'Used bytes on the data directory disk.', s.host.diskUsedBytes)
        .gauge('kiln_host_disk_total_bytes', 'Size of the data directory disk.', s.host.diskTotalBytes);
    }
    return p.toString();
  }

  /**
   * The scheduler's slot count changed: new slots appear idle at once; removed ones go
   * when idle (a busy one stays until its worker.slot idle event), so slot numbers and
   * per-slot utilization stay those of the scheduler.
   */
  setConcurrency(n: number): void {
    this.concurrency = n;
    for (let i = 0; i < n; i++) this.slot(i);
    for (const [i, s] of this.slots) if (i >= n && !s.busy) this.slots.delete(i);
  }

  stop(): void {
    this.unsubscribe();
    this.opts.host?.stop();
  }

  private slot(n: number): Slot {
    let s = this.slots.get(n);
    if (!s) this.slots.set(n, (s = { busy: false, since: this.clock.now(), util: new SlotUtilization(this.clock.now()) }));
    return s;
  }

  private onQueued(e: EventOf<'action.queued'>): void {
    if (this.actions.has(e.id) || this.actions.size >= MAX_TRACKED_ACTIONS) return;
    this.actions.set(e.id, { queuedAt: e.at, mnemonic: e.mnemonic, target: e.target, argv0: e.details?.argv[0] });
    this.queued++;
  }

  private onStarted(e: EventOf<'action.started'>): void {
    const a = this.actions.get(e.id);
    if (!a || a.startedAt !== undefined) return;
    a.startedAt = e.at;
    this.queued--;
    this.running++;
    this.queueTime.observe(e.at - a.queuedAt);
  }

  private onFinished(e: EventOf<'action.finished'>): void {
    const a = this.actions.get(e.id);
    if (a) {
      this.actions.delete(e.id);
      if (a.startedAt === undefined) this.queued--;
      else this.running--;
    }
    this.finishedTotal++;
    this.byOutcome[e.outcome]++;
    this.finishedWindow.add(e.at, 1);
    const total = e.timing?.totalMs ?? (a ? e.at - a.queuedAt : undefined);
    if (total !== undefined) this.duration.observe(total);
  }

  private onSlot(e: EventOf<'worker.slot'>): void {
    const s = this.slot(e.slot);
    s.util.setBusy(e.busy, e.at);
    if (s.busy !== e.busy) s.since = e.at;
    s.busy = e.busy;
    s.actionId = e.busy ? e.actionId : undefined;
    if (!e.busy && e.slot >= this.concurrency) this.slots.delete(e.slot);
  }
}
