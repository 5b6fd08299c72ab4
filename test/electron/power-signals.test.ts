import { describe, expect, it } from 'vitest';
import { powerMonitorSignals } from '../../electron/power-signals';
import { SlotGovernor } from '../../engine/governor/slot-governor';
import { SLOT_REASONS } from '../../engine/common/farm-modes';
import { fakeElectron } from './fakes';

describe('powerMonitor as desk signals', () => {
  it('reports idle time, the lock screen and battery, which the governor acts on', async () => {
    const { powerMonitor } = fakeElectron();
    const signals = powerMonitorSignals(powerMonitor);
    powerMonitor.idleSeconds = 3;
    expect(await signals.sample()).toEqual({ userIdleMs: 3_000, locked: false, onBattery: false });

    const gov = new SlotGovernor();
    const decide = async (now: number) => gov.decide({ now, mode: 'polite', configuredSlots: 8, cores: 8, desk: { at: now, ...(await signals.sample()) } });
    expect(await decide(0)).toMatchObject({ slots: 4, reason: SLOT_REASONS.userActive });
    powerMonitor.state = 'locked';
    await decide(60_000);
    // More slots only once the desk has stayed free for the rise delay.
    expect(await decide(75_000)).toMatchObject({ slots: 8, reason: SLOT_REASONS.machineFree });
    powerMonitor.onBattery = true;
    expect(await decide(120_000)).toMatchObject({ slots: 4, reason: SLOT_REASONS.onBattery });
  });
});
