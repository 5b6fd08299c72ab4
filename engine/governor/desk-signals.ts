// What the governor knows of the person's machine: how busy other programs
// keep the CPUs, the battery, and (in the desktop app) keyboard idle time and
// the lock screen. One small interface; the headless engine reads /proc and
// /sys on Linux (systeminformation elsewhere), and the desktop app adds
// Electron's powerMonitor through the same interface (electron/).
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import si from 'systeminformation';
import type { DeskSnapshot } from '../common/farm-modes';

export interface DeskSignals {
  /** The machine now; fields a source cannot tell are left out. Never rejects. */
  sample(): Promise<Omit<DeskSnapshot, 'at'>>;
}

/** Several sources as one: later sources fill in (and override) what earlier ones said. */
export function combineDeskSignals(...sources: DeskSignals[]): DeskSignals {
  return {
    async sample() {
      const parts = await Promise.all(sources.map((s) => s.sample().catch(() => ({}))));
      return Object.assign({}, ...parts.map(defined));
    },
  };
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Jiffies from the aggregate line of /proc/stat. */
interface CpuTimes {
  /** Time other programs kept CPUs busy: user, system, irq, softirq, steal; not nice. */
  busy: number;
  total: number;
}

/**
 * Reads /proc/stat and /sys/class/power_supply. Kiln's polite actions run at
 * nice 19, and the kernel counts niced user time apart ("nice"), so the CPU
 * that other programs use is everything busy except that column. Kernel time
 * of Kiln's own actions still counts; for CPU-bound builds it is small.
 */
export class LinuxDeskSignals implements DeskSignals {
  private last?: CpuTimes;

  constructor(private readonly root = '/') {}

  async sample(): Promise<Omit<DeskSnapshot, 'at'>> {
    const [cpu, power] = await Promise.all([this.cpu().catch(() => undefined), readPowerSupply(join(this.root, 'sys/class/power_supply')).catch(() => ({}))]);
    return { othersBusy: cpu, ...power };
  }

  private async cpu(): Promise<number | undefined> {
    const now = parseProcStat(await readFile(join(this.root, 'proc/stat'), 'utf8'));
    const prev = this.last;
    this.last = now;
    if (!prev || now.total <= prev.total) return undefined;
    return Math.min(1, Math.max(0, (now.busy - prev.busy) / (now.total - prev.total)));
  }
}

export function parseProcStat(text: string): CpuTimes {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('no aggregate cpu line in /proc/stat');
  const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + system + irq + softirq + steal;
  return { busy, total: busy + nice + idle + iowait };
}

/** On battery: a battery discharging, or no mains adapter online while one exists. */
export async function readPowerSupply(dir: string): Promise<Pick<DeskSnapshot, 'onBattery' | 'batteryPercent'>> {
  const names = await readdir(dir).catch(() => [] as string[]);
  let mainsSeen = false;
  let mainsOnline = false;
  let discharging = false;
  let percent: number | undefined;
  for (const name of names) {
    const read = (f: string) => readFile(join(dir, name, f), 'utf8').then((t) => t.trim(), () => undefined);
    const type = await read('type');
    if (type === 'Mains') {
      mainsSeen = true;
      if ((await read('online')) === '1') mainsOnline = true;
    } else if (type === 'Battery') {
      if ((await read('scope')) === 'Device') continue; // a mouse's battery says nothing about this machine
      if ((await read('status')) === 'Discharging') discharging = true;
      const capacity = Number(await read('capacity'));
      if (Number.isFinite(capacity)) percent = percent === undefined ? capacity : Math.min(percent, capacity);
    }
  }
  if (percent === undefined && !mainsSeen) return {};
  return { onBattery: discharging || (mainsSeen && !mainsOnline), batteryPercent: percent };
}

/** macOS and Windows: systeminformation's load (all of it, Kiln's own included) and battery. */
export class SystemInfoDeskSignals implements DeskSignals {
  async sample(): Promise<Omit<DeskSnapshot, 'at'>> {
    const [load, battery] = await Promise.all([si.currentLoad().catch(() => undefined), si.battery().catch(() => undefined)]);
    return {
      // currentLoadNice is the niced share, Kiln's polite actions among it.
      othersBusy: load ? Math.min(1, Math.max(0, (load.currentLoad - (load.currentLoadNice ?? 0)) / 100)) : undefined,
      onBattery: battery?.hasBattery ? !battery.acConnected : undefined,
      batteryPercent: battery?.hasBattery ? battery.percent : undefined,
    };
  }
}

/** The headless engine's source for this OS. */
export function defaultDeskSignals(): DeskSignals {
  return process.platform === 'linux' ? new LinuxDeskSignals() : new SystemInfoDeskSignals();
}
