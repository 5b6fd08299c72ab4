// Decides how many worker slots the farm runs: signals in, target slots and
// the reason out. Pure apart from its own memory (the smoothed load, when the
// slots last changed); the caller brings the time, so tests drive it with a
// fake clock. Polite mode follows the machine: the CPU left over by other
// programs, the person at the desk, the battery. Builder-style damping keeps
// slots from flapping: load is smoothed exponentially, a cut waits for a
// cooldown since the last change, and a rise waits until the machine has
// stayed free for a while.
import { SLOT_REASONS, type DeskSnapshot, type FarmMode } from '../common/farm-modes';

export interface GovernorTuning {
  /** Time constant of the exponential smoothing of other programs' CPU use. */
  smoothingMs: number;
  /** No two changes closer than this. */
  cooldownMs: number;
  /** More slots only after the higher target has held this long. */
  riseDelayMs: number;
  /** The person counts as active while input is more recent than this. */
  userActiveMs: number;
  /** Below this battery percentage, polite mode runs one slot. */
  batteryLowPercent: number;
}

export const DEFAULT_TUNING: GovernorTuning = {
  smoothingMs: 5_000,
  cooldownMs: 5_000,
  riseDelayMs: 10_000,
  userActiveMs: 60_000,
  batteryLowPercent: 20,
};

export interface GovernorInput {
  now: number;
  mode: FarmMode;
  /** The configured worker slots (the most polite and normal modes use). */
  configuredSlots: number;
  cores: number;
  desk: DeskSnapshot;
}

export interface SlotDecision {
  slots: number;
  /** The most this mode may use. */
  maxSlots: number;
  reason: string;
}

export class SlotGovernor {
  private readonly tuning: GovernorTuning;
  private smoothed?: { value: number; at: number };
  private current?: SlotDecision & { mode: FarmMode; changedAt: number };
  /** Since when a target above the current slots has held, without a dip. */
  private risingSince?: number;

  constructor(tuning: Partial<GovernorTuning> = {}) {
    this.tuning = { ...DEFAULT_TUNING, ...tuning };
  }

  decide(input: GovernorInput): SlotDecision {
    const { now, mode } = input;
    const target = this.target(input);
    const cur = this.current;
    // A new mode, or a new ceiling, is the person's choice: apply it at once.
    if (!cur || cur.mode !== mode || cur.maxSlots !== target.maxSlots) return this.apply(target, mode, now);
    if (target.slots === cur.slots) {
      this.risingSince = undefined;
      // Same count, maybe a new reason (battery now, rather than busy CPUs).
      if (target.reason !== cur.reason) this.current = { ...cur, reason: target.reason };
      return this.result();
    }
    const cooled = now - cur.changedAt >= this.tuning.cooldownMs;
    if (target.slots < cur.slots) {
      this.risingSince = undefined;
      return cooled ? this.apply(target, mode, now) : this.result();
    }
    this.risingSince ??= now;
    if (cooled && now - this.risingSince >= this.tuning.riseDelayMs) return this.apply(target, mode, now);
    return this.result();
  }

  /** Other programs' CPU use as smoothed so far (for the dashboard and tests). */
  get smoothedOthersBusy(): number | undefined {
    return this.smoothed?.value;
  }

  private apply(target: SlotDecision, mode: FarmMode, now: number): SlotDecision {
    this.current = { ...target, mode, changedAt: now };
    this.risingSince = undefined;
    return this.result();
  }

  private result(): SlotDecision {
    const { slots, maxSlots, reason } = this.current!;
    return { slots, maxSlots, reason };
  }

  /** Where the slots should be, before damping. */
  private target(input: GovernorInput): SlotDecision {
    const { mode, configuredSlots, cores } = input;
    if (mode === 'normal') return { slots: configuredSlots, maxSlots: configuredSlots, reason: SLOT_REASONS.fixed };
    if (mode === 'all-out') {
      const all = Math.max(configuredSlots, cores);
      return { slots: all, maxSlots: all, reason: SLOT_REASONS.allCores };
    }
    const max = configuredSlots;
    // Each limit with its reason; the tightest wins, the earlier one on a tie.
    const limits: [number, string][] = [];
    const { desk } = input;
    if (desk.onBattery) {
      const low = desk.batteryPercent !== undefined && desk.batteryPercent < this.tuning.batteryLowPercent;
      limits.push(low ? [1, SLOT_REASONS.batteryLow] : [Math.floor(max / 2), SLOT_REASONS.onBattery]);
    }
    if (desk.userIdleMs !== undefined && desk.userIdleMs < this.tuning.userActiveMs && !desk.locked) {
      limits.push([Math.floor(max / 2), SLOT_REASONS.userActive]);
    }
    const busy = this.smooth(desk.othersBusy, input.now);
    // The cores other programs use are taken off the top.
    if (busy !== undefined) limits.push([max - Math.round(cores * busy), SLOT_REASONS.othersBusy]);
    let slots = max;
    let reason: string = SLOT_REASONS.machineFree;
    for (const [limit, why] of limits) {
      const bounded = Math.max(1, Math.min(max, limit));
      if (bounded < slots) [slots, reason] = [bounded, why];
    }
    return { slots, maxSlots: max, reason };
  }

  private smooth(sample: number | undefined, now: number): number | undefined {
    if (sample === undefined || !Number.isFinite(sample)) return this.smoothed?.value;
    const x = Math.min(1, Math.max(0, sample));
    if (!this.smoothed) {
      this.smoothed = { value: x, at: now };
    } else {
      const dt = Math.max(0, now - this.smoothed.at);
      const alpha = 1 - Math.exp(-dt / this.tuning.smoothingMs);
      this.smoothed = { value: this.smoothed.value + alpha * (x - this.smoothed.value), at: now };
    }
    return this.smoothed.value;
  }
}
