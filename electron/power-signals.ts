// The desktop app's part of the farm's desk signals: Electron's powerMonitor
// knows what /proc cannot, whether the person is at the keyboard, whether the
// screen is locked, and whether the laptop runs on battery. The engine merges
// these over its own /proc (or systeminformation) readings.
import type { DeskSignals } from '../engine/governor/desk-signals';
import type { PowerMonitorLike } from './electron-like';

/** Seconds of no input after which getSystemIdleState says "idle"; only "locked" is used from it. */
const IDLE_THRESHOLD_S = 60;

export function powerMonitorSignals(powerMonitor: PowerMonitorLike): DeskSignals {
  return {
    async sample() {
      return {
        userIdleMs: powerMonitor.getSystemIdleTime() * 1000,
        locked: powerMonitor.getSystemIdleState(IDLE_THRESHOLD_S) === 'locked',
        onBattery: powerMonitor.isOnBatteryPower(),
      };
    },
  };
}
