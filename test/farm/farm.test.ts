// The farm with a fake scheduler, fake desk signals and a ManualClock.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { SLOT_REASONS, type ActionSignal, type DeskSnapshot } from '../../engine/common/farm-modes';
import { EventBus, type KilnEvent } from '../../engine/events/event-bus';
import { combineDeskSignals, parseProcStat, readPowerSupply, type DeskSignals } from '../../engine/governor/desk-signals';
import { Farm, type FarmSlots } from '../../engine/governor/farm';
import { SlotGovernor } from '../../engine/governor/slot-governor';

class FakeSlots implements FarmSlots {
  concurrency = 0;
  held = false;
  running = new Map<string, boolean>();
  signals: [string, ActionSignal][] = [];
  setConcurrency(n: number) {
    this.concurrency = n;
  }
  hold(held: boolean) {
    this.held = held;
  }
  runningActions() {
    return [...this.running].map(([id, stopped]) => ({ id, stopped }));
  }
  signal(id: string, signal: ActionSignal) {
    if (!this.running.has(id)) return undefined;
    this.signals.push([id, signal]);
    if (signal === 'STOP') this.running.set(id, true);
    if (signal === 'CONT') this.running.set(id, false);
    return signal === 'STOP' ? 'paused (SIGSTOP)' : signal === 'CONT' ? 'resumed (SIGCONT)' : `sent SIG${signal}`;
  }
}

let clock: ManualClock;
let slots: FakeSlots;
let desk: Omit<DeskSnapshot, 'at'>;
let events: KilnEvent[];
let farm: Farm;

function makeFarm(mode: 'polite' | 'normal' | 'all-out' = 'polite') {
  const bus = new EventBus();
  bus.subscribe((e) => events.push(e));
  const source: DeskSignals = { sample: async () => desk };
  return new Farm({
    slots,
    desk: source,
    mode,
    configuredSlots: 8,
    cores: 8,
    clock,
    events: bus,
    governor: new SlotGovernor({ cooldownMs: 5_000, riseDelayMs: 10_000, smoothingMs: 1_000 }),
  });
}

async function run(ms: number, stepMs = 1_000) {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(stepMs);
    await farm.tick();
  }
}

beforeEach(() => {
  clock = new ManualClock();
  slots = new FakeSlots();
  desk = { othersBusy: 0 };
  events = [];
  farm = makeFarm();
});
afterEach(() => farm.stop());

describe('Farm', () => {
  it('starts at the ceiling, follows the governor, and says why', async () => {
    expect(slots.concurrency).toBe(8);
    desk = { othersBusy: 0, onBattery: true, batteryPercent: 70 };
    await run(6_000);
    expect(slots.concurrency).toBe(4);
    expect(farm.status()).toMatchObject({ mode: 'polite', slots: 4, maxSlots: 8, reason: SLOT_REASONS.onBattery, summary: '4 of 8 slots: on battery', background: true });
    expect(events.filter((e) => e.type === 'farm.changed').at(-1)).toMatchObject({ status: { slots: 4 } });
  });

  it('keeps a history of slot changes for the chart', async () => {
    desk = { othersBusy: 0.5 };
    await run(10_000);
    desk = { othersBusy: 0 };
    await run(30_000);
    const history = farm.status(true).history!.map((p) => p.slots);
    expect(history[0]).toBe(8);
    expect(history).toContain(4);
    expect(history.at(-1)).toBe(8);
    expect(farm.status().history).toBeUndefined();
  });

  it('switches modes at once: normal runs the configured slots at normal priority, all-out every core', async () => {
    desk = { othersBusy: 1 };
    await run(10_000);
    expect(slots.concurrency).toBe(1);
    farm.setMode('normal');
    expect(slots.concurrency).toBe(8);
    expect(farm.status()).toMatchObject({ reason: SLOT_REASONS.fixed, background: false });
    farm.setConfiguredSlots(3);
    expect(slots.concurrency).toBe(3);
    farm.setMode('all-out');
    expect(farm.status()).toMatchObject({ slots: 8, maxSlots: 8, reason: SLOT_REASONS.allCores });
  });

  it('pauses for some minutes: holds the queue, stops running actions, then resumes by itself', async () => {
    slots.running.set('a', false);
    slots.running.set('b', true); // a person paused this one before
    farm.pause(15);
    expect(slots.held).toBe(true);
    expect(slots.signals).toEqual([['a', 'STOP']]);
    expect(farm.status()).toMatchObject({ slots: 0, reason: SLOT_REASONS.paused, paused: { since: clock.now(), until: clock.now() + 15 * 60_000 } });
    clock.advance(15 * 60_000 - 1);
    expect(slots.held).toBe(true);
    clock.advance(1);
    expect(slots.held).toBe(false);
    // Only what the pause stopped is continued.
    expect(slots.signals).toEqual([['a', 'STOP'], ['a', 'CONT']]);
    expect(slots.running.get('b')).toBe(true);
    expect(farm.status()).toMatchObject({ slots: 8, paused: undefined });
  });

  it('pauses until resumed', () => {
    farm.pause();
    clock.advance(24 * 3_600_000);
    expect(farm.status().paused).toEqual({ since: clock.now() - 24 * 3_600_000 });
    farm.resume();
    expect(slots.held).toBe(false);
    // An hour of chart: the start of the day has fallen off its left edge, the pause has not.
    expect(farm.status(true).history!.map((p) => p.slots)).toEqual([0, 8]);
  });
});

describe('desk signals', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'kiln-desk-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function supply(name: string, files: Record<string, string>) {
    mkdirSync(join(dir, name), { recursive: true });
    for (const [f, v] of Object.entries(files)) writeFileSync(join(dir, name, f), `${v}\n`);
  }

  it("counts everything busy but niced time (Kiln's polite actions) as other programs' CPU", () => {
    expect(parseProcStat('cpu  100 500 50 300 20 5 5 0 0 0\ncpu0 1 2 3 4\n')).toEqual({ busy: 160, total: 980 });
  });

  it('reads battery and mains from /sys/class/power_supply, ignoring a mouse', async () => {
    supply('AC', { type: 'Mains', online: '0' });
    supply('BAT0', { type: 'Battery', status: 'Discharging', capacity: '64' });
    supply('hidpp_battery_0', { type: 'Battery', scope: 'Device', status: 'Discharging', capacity: '5' });
    expect(await readPowerSupply(dir)).toEqual({ onBattery: true, batteryPercent: 64 });
    supply('AC', { type: 'Mains', online: '1' });
    supply('BAT0', { type: 'Battery', status: 'Charging', capacity: '64' });
    expect(await readPowerSupply(dir)).toEqual({ onBattery: false, batteryPercent: 64 });
  });

  it('says nothing about power on a machine without a battery or adapter', async () => {
    expect(await readPowerSupply(join(dir, 'missing'))).toEqual({});
  });

  it('combines sources, later ones filling in what earlier ones could not tell', async () => {
    const proc: DeskSignals = { sample: async () => ({ othersBusy: 0.3, onBattery: undefined }) };
    const electron: DeskSignals = { sample: async () => ({ onBattery: true, userIdleMs: 4_000 }) };
    const broken: DeskSignals = { sample: () => Promise.reject(new Error('gone')) };
    expect(await combineDeskSignals(proc, broken, electron).sample()).toEqual({ othersBusy: 0.3, onBattery: true, userIdleMs: 4_000 });
  });
});
