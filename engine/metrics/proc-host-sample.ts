// Host CPU and memory read straight from Linux's /proc. systeminformation gets
// the same numbers by running `cat /proc/stat | grep cpu` through a shell with
// execSync, which blocked the engine's event loop for milliseconds every
// sample (a quarter of its main-thread time under a stream of actions).

import { readFile } from 'node:fs/promises';

/** Jiffies the machine spent busy, and in all, since boot (the `cpu` line of /proc/stat). */
export interface CpuTimes {
  busy: number;
  total: number;
}

/** Reads the aggregate `cpu` line; undefined when there is none. */
export function parseProcStat(text: string): CpuTimes | undefined {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  // user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 4 || f.some((n) => !Number.isFinite(n))) return undefined;
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3] + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** MemTotal and MemAvailable in bytes; undefined when either is missing. */
export function parseMeminfo(text: string): { total: number; available: number } | undefined {
  const kib = (name: string) => {
    const m = text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const total = kib('MemTotal');
  const available = kib('MemAvailable');
  return total === undefined || available === undefined ? undefined : { total, available };
}

/** CPU load in [0, 1] between two readings; 0 when no time passed. */
export function cpuLoadBetween(before: CpuTimes | undefined, after: CpuTimes): number {
  const total = after.total - (before?.total ?? 0);
  const busy = after.busy - (before?.busy ?? 0);
  return total > 0 ? Math.min(1, Math.max(0, busy / total)) : 0;
}

/**
 * A reader that remembers the previous /proc/stat, so each sample's CPU load is
 * over the interval since the last one (the first is since boot).
 */
export function procReader(): () => Promise<{ cpu: number; memUsedBytes: number; memTotalBytes: number }> {
  let last: CpuTimes | undefined;
  return async () => {
    const [stat, meminfo] = await Promise.all([readFile('/proc/stat', 'utf8'), readFile('/proc/meminfo', 'utf8')]);
    const times = parseProcStat(stat);
    const mem = parseMeminfo(meminfo);
    if (!times || !mem) throw new Error('/proc/stat or /proc/meminfo is not in the expected format');
    const cpu = cpuLoadBetween(last, times);
    last = times;
    return { cpu, memUsedBytes: mem.total - mem.available, memTotalBytes: mem.total };
  };
}
