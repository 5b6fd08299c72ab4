import { describe, expect, it } from 'vitest';
import { SLOT_REASONS, type DeskSnapshot, type FarmMode } from '../../engine/common/farm-modes';
import { SlotGovernor } from '../../engine/governor/slot-governor';

const CORES = 8;
const TUNING = { smoothingMs: 2_000, cooldownMs: 5_000, riseDelayMs: 10_000 };

/** Drives a governor with a fake clock: one decision per `stepMs` for `ms`, the desk given by `desk(t)`. */
function drive(gov: SlotGovernor, start: number, ms: number, desk: (t: number) => Omit<DeskSnapshot, 'at'>, mode: FarmMode = 'polite', stepMs = 1_000) {
  const seen: { at: number; slots: number; reason: string }[] = [];
  for (let t = start; t < start + ms; t += stepMs) {
    const d = gov.decide({ now: t, mode, configuredSlots: CORES, cores: CORES, desk: { at: t, ...desk(t) } });
    seen.push({ at: t, ...d });
  }
  return seen;
}

function changes(seen: { at: number; slots: number }[]) {
  return seen.filter((s, i) => i > 0 && s.slots !== seen[i - 1].slots);
}

describe('SlotGovernor', () => {
  it('runs every configured slot on a free machine in polite mode', () => {
    const seen = drive(new SlotGovernor(TUNING), 0, 20_000, () => ({ othersBusy: 0 }));
    expect(seen.at(-1)).toMatchObject({ slots: CORES, reason: SLOT_REASONS.machineFree });
  });

  it('gives the cores other programs use back, and takes them again only after the rise delay', () => {
    const gov = new SlotGovernor(TUNING);
    drive(gov, 0, 20_000, () => ({ othersBusy: 0 }));
    // A foreground build keeps six of eight cores busy from t=20 s to t=60 s.
    const loaded = drive(gov, 20_000, 40_000, () => ({ othersBusy: 0.75 }));
    expect(loaded.at(-1)).toMatchObject({ slots: 2, reason: SLOT_REASONS.othersBusy });
    const firstCut = loaded.find((s) => s.slots < CORES)!;
    expect(firstCut.at - 20_000).toBeLessThanOrEqual(3_000);

    const freed = drive(gov, 60_000, 40_000, () => ({ othersBusy: 0 }));
    const back = freed.find((s) => s.slots === CORES)!;
    expect(back).toBeDefined();
    // Not before the rise delay, but within seconds of it.
    expect(back.at - 60_000).toBeGreaterThanOrEqual(TUNING.riseDelayMs);
    expect(back.at - 60_000).toBeLessThanOrEqual(TUNING.riseDelayMs + 10_000);
    expect(back.reason).toBe(SLOT_REASONS.machineFree);
  });

  it('never changes slots faster than the cooldown, however the load flaps', () => {
    const gov = new SlotGovernor(TUNING);
    // Load jumps between nothing and everything every second (and every 300 ms, below).
    const seen = [
      ...drive(gov, 0, 60_000, (t) => ({ othersBusy: Math.floor(t / 1_000) % 2 ? 1 : 0 })),
      ...drive(gov, 60_000, 60_000, (t) => ({ othersBusy: Math.floor(t / 300) % 2 ? 1 : 0 }), 'polite', 100),
    ];
    const c = changes(seen);
    for (let i = 1; i < c.length; i++) expect(c[i].at - c[i - 1].at).toBeGreaterThanOrEqual(TUNING.cooldownMs);
  });

  it('does fewer on battery, and one slot when the battery is low', () => {
    const gov = new SlotGovernor(TUNING);
    drive(gov, 0, 10_000, () => ({ othersBusy: 0, onBattery: false }));
    expect(drive(gov, 10_000, 10_000, () => ({ othersBusy: 0, onBattery: true, batteryPercent: 80 })).at(-1)).toMatchObject({
      slots: CORES / 2,
      reason: SLOT_REASONS.onBattery,
    });
    expect(drive(gov, 20_000, 10_000, () => ({ othersBusy: 0, onBattery: true, batteryPercent: 10 })).at(-1)).toMatchObject({
      slots: 1,
      reason: SLOT_REASONS.batteryLow,
    });
    // Plugged in again: back up, but only after the rise delay.
    const plugged = drive(gov, 30_000, 30_000, () => ({ othersBusy: 0, onBattery: false }));
    expect(plugged[0].slots).toBe(1);
    expect(plugged.at(-1)).toMatchObject({ slots: CORES, reason: SLOT_REASONS.machineFree });
  });

  it('halves the slots while the person at the desk is active, not while the screen is locked', () => {
    const gov = new SlotGovernor(TUNING);
    drive(gov, 0, 10_000, () => ({ othersBusy: 0, userIdleMs: 600_000 }));
    expect(drive(gov, 10_000, 10_000, () => ({ othersBusy: 0, userIdleMs: 2_000 })).at(-1)).toMatchObject({
      slots: CORES / 2,
      reason: SLOT_REASONS.userActive,
    });
    expect(drive(gov, 20_000, 30_000, () => ({ othersBusy: 0, userIdleMs: 2_000, locked: true })).at(-1)).toMatchObject({
      slots: CORES,
      reason: SLOT_REASONS.machineFree,
    });
  });

  it('names the tightest limit when several hold', () => {
    const gov = new SlotGovernor(TUNING);
    const d = drive(gov, 0, 10_000, () => ({ othersBusy: 0.5, onBattery: true, batteryPercent: 90, userIdleMs: 0 })).at(-1)!;
    // Battery and the user both allow 4; busy CPUs allow 4 too: the first named (battery) wins the tie.
    expect(d).toMatchObject({ slots: 4, reason: SLOT_REASONS.onBattery });
    const busier = drive(gov, 10_000, 30_000, () => ({ othersBusy: 0.9, onBattery: true, batteryPercent: 90, userIdleMs: 0 })).at(-1)!;
    expect(busier).toMatchObject({ slots: 1, reason: SLOT_REASONS.othersBusy });
  });

  it('keeps at least one slot in polite mode, however busy the machine', () => {
    expect(drive(new SlotGovernor(TUNING), 0, 30_000, () => ({ othersBusy: 1 })).at(-1)!.slots).toBe(1);
  });

  it('ignores the machine in normal and all-out modes, and applies a mode change at once', () => {
    const gov = new SlotGovernor(TUNING);
    drive(gov, 0, 20_000, () => ({ othersBusy: 1, onBattery: true }));
    const normal = gov.decide({ now: 20_500, mode: 'normal', configuredSlots: 3, cores: CORES, desk: { at: 20_500, othersBusy: 1, onBattery: true } });
    expect(normal).toEqual({ slots: 3, maxSlots: 3, reason: SLOT_REASONS.fixed });
    const allOut = gov.decide({ now: 20_600, mode: 'all-out', configuredSlots: 3, cores: CORES, desk: { at: 20_600, othersBusy: 1 } });
    expect(allOut).toEqual({ slots: CORES, maxSlots: CORES, reason: SLOT_REASONS.allCores });
  });

  it('without any signal, runs the configured slots', () => {
    expect(drive(new SlotGovernor(TUNING), 0, 5_000, () => ({})).at(-1)).toMatchObject({ slots: CORES, reason: SLOT_REASONS.machineFree });
  });
});
