// The polite farm: asks the desk signals every few seconds, lets the slot
// governor decide, and applies the answer to the scheduler's slots; pauses
// the whole farm for some minutes or until resumed (queued actions wait,
// running ones are stopped with SIGSTOP and continued with SIGCONT), and keeps
// a short history of slots for the dashboard's chart. Every change is an
// event ('farm.changed'), so the dashboard, the tray and /metrics see it.
import { describeSlots, SLOT_REASONS, type ActionSignal, type DeskSnapshot, type FarmMode, type FarmStatus, type SlotPoint } from '../common/farm-modes';
import type { Clock } from '../clock';
import { nullSink, type EventSink } from '../events/event-bus';
import type { DeskSignals } from './desk-signals';
import { SlotGovernor, type SlotDecision } from './slot-governor';

/** What the farm needs of the scheduler. */
export interface FarmSlots {
  setConcurrency(n: number): void;
  /** Held: queued actions wait and nothing new starts. */
  hold(held: boolean): void;
  runningActions(): { id: string; stopped: boolean }[];
  signal(id: string, signal: ActionSignal, by?: string): string | undefined;
}

export interface FarmOptions {
  slots: FarmSlots;
  desk: DeskSignals;
  mode: FarmMode;
  /** The configured worker slots (the ceiling of polite and normal modes). */
  configuredSlots: number;
  cores: number;
  clock: Clock;
  events?: EventSink;
  governor?: SlotGovernor;
  /** How often the desk is asked; default 2 s. */
  everyMs?: number;
  /** How far back the slots chart goes; default an hour. */
  historyMs?: number;
  log?: (line: string) => void;
}

/** At most this many points in the chart (changes are rare thanks to the cooldown). */
const MAX_POINTS = 2_000;

export class Farm {
  private modeNow: FarmMode;
  private configured: number;
  private decision: SlotDecision;
  private desk?: DeskSnapshot;
  private pausedState?: { since: number; until?: number; timer?: { cancel(): void } };
  /** Actions the pause stopped, so resuming continues only those (not ones a person paused). */
  private stoppedByPause = new Set<string>();
  private history: SlotPoint[] = [];
  private readonly governor: SlotGovernor;
  private readonly events: EventSink;
  private timer?: { cancel(): void };
  private stopped = false;
  private lastEmitted = '';
  private applied?: number;

  constructor(private readonly opts: FarmOptions) {
    this.modeNow = opts.mode;
    this.configured = opts.configuredSlots;
    this.governor = opts.governor ?? new SlotGovernor();
    this.events = opts.events ?? nullSink;
    // Until the desk first answers, the mode's ceiling: a Kiln must not start slower than it used to.
    this.decision = this.governor.decide({ now: opts.clock.now(), mode: this.modeNow, configuredSlots: this.configured, cores: opts.cores, desk: { at: opts.clock.now() } });
    this.apply();
  }

  /** Asks the desk now and then every `everyMs`, until stop(). */
  start(): void {
    const loop = async () => {
      await this.tick();
      if (!this.stopped) this.timer = this.opts.clock.setTimeout(() => void loop(), this.opts.everyMs ?? 2_000);
    };
    void loop();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.pausedState?.timer?.cancel();
  }

  /** One look at the desk and one decision (the loop's step; tests call it directly). */
  async tick(): Promise<void> {
    const sample = await this.opts.desk.sample().catch(() => ({}));
    const now = this.opts.clock.now();
    this.desk = { at: now, ...sample };
    this.decide(now);
  }

  get mode(): FarmMode {
    return this.modeNow;
  }

  /** Polite mode's actions run at background priority. */
  get background(): boolean {
    return this.modeNow === 'polite';
  }

  setMode(mode: FarmMode): void {
    if (mode === this.modeNow) return;
    this.modeNow = mode;
    this.opts.log?.(`kiln: farm mode ${mode}`);
    this.decide(this.opts.clock.now());
  }

  /** The configured slots changed (Settings): the new ceiling applies at once. */
  setConfiguredSlots(n: number): void {
    this.configured = n;
    this.decide(this.opts.clock.now());
  }

  /**
   * Pauses the whole farm: queued actions wait, running ones are stopped
   * (SIGSTOP). For `minutes`, or until resume() when undefined. Pausing again
   * changes when it ends.
   */
  pause(minutes?: number): void {
    const { clock } = this.opts;
    const now = clock.now();
    this.pausedState?.timer?.cancel();
    const until = minutes === undefined ? undefined : now + Math.round(minutes * 60_000);
    this.pausedState = {
      since: this.pausedState?.since ?? now,
      until,
      timer: until === undefined ? undefined : clock.setTimeout(() => this.resume(), until - now),
    };
    this.opts.slots.hold(true);
    for (const a of this.opts.slots.runningActions()) {
      if (a.stopped || this.stoppedByPause.has(a.id)) continue;
      if (this.opts.slots.signal(a.id, 'STOP', 'the farm pause') === 'paused (SIGSTOP)') this.stoppedByPause.add(a.id);
    }
    this.opts.log?.(`kiln: farm paused ${until === undefined ? 'until resumed' : `for ${minutes} minute(s)`}`);
    this.record(now);
    this.emit(now);
  }

  resume(): void {
    if (!this.pausedState) return;
    this.pausedState.timer?.cancel();
    this.pausedState = undefined;
    const running = new Map(this.opts.slots.runningActions().map((a) => [a.id, a]));
    for (const id of this.stoppedByPause) if (running.get(id)?.stopped) this.opts.slots.signal(id, 'CONT', 'the farm resuming');
    this.stoppedByPause.clear();
    this.opts.slots.hold(false);
    this.opts.log?.('kiln: farm resumed');
    const now = this.opts.clock.now();
    this.record(now);
    this.emit(now);
  }

  get paused(): { since: number; until?: number } | undefined {
    return this.pausedState && { since: this.pausedState.since, until: this.pausedState.until };
  }

  /** Slots taking work now: 0 while paused. */
  get slots(): number {
    return this.pausedState ? 0 : this.decision.slots;
  }

  status(withHistory = false): FarmStatus {
    const reason = this.pausedState ? SLOT_REASONS.paused : this.decision.reason;
    return {
      mode: this.modeNow,
      slots: this.slots,
      maxSlots: this.decision.maxSlots,
      reason,
      summary: describeSlots(this.slots, this.decision.maxSlots, reason),
      paused: this.paused,
      background: this.background,
      desk: this.desk,
      history: withHistory ? [...this.history] : undefined,
    };
  }

  private decide(now: number): void {
    this.decision = this.governor.decide({ now, mode: this.modeNow, configuredSlots: this.configured, cores: this.opts.cores, desk: this.desk ?? { at: now } });
    this.apply();
  }

  private apply(): void {
    const now = this.opts.clock.now();
    // The scheduler keeps its slots while paused (the hold stops new work), so resuming needs no decision.
    if (this.applied !== this.decision.slots) this.opts.slots.setConcurrency(this.decision.slots);
    this.applied = this.decision.slots;
    this.record(now);
    this.emit(now);
  }

  private record(now: number): void {
    const last = this.history[this.history.length - 1];
    if (last?.slots === this.slots) return;
    this.history.push({ at: now, slots: this.slots });
    const horizon = now - (this.opts.historyMs ?? 3_600_000);
    // Keep one point before the horizon: the chart's left edge needs the value there.
    while (this.history.length > 1 && (this.history[1].at <= horizon || this.history.length > MAX_POINTS)) this.history.shift();
  }

  private emit(now: number): void {
    const status = this.status();
    const key = JSON.stringify({ ...status, desk: undefined });
    if (key === this.lastEmitted) return;
    this.lastEmitted = key;
    this.events.emit({ type: 'farm.changed', at: now, status });
  }
}
