// Host CPU, memory and disk, sampled in the background every few seconds so a
// request never waits on (or multiplies) system calls. Timers are unref'd.
import { statfs } from 'node:fs/promises';
import { cpus } from 'node:os';
import type { HostSnapshot } from '../common/api-types';
import { procReader } from './proc-host-sample';

export interface HostSampler {
  /** The latest sample, or null before the first one completes. */
  latest(): HostSnapshot | null;
  stop(): void;
}

export type SampleFn = () => Promise<HostSnapshot>;

type CpuAndMemory = () => Promise<{ cpu: number; memUsedBytes: number; memTotalBytes: number }>;

/** systeminformation, loaded only where it is used: it spawns shells on Linux, so there /proc is read instead. */
function systeminformationReader(): CpuAndMemory {
  return async () => {
    const si = (await import('systeminformation')).default;
    const [load, mem] = await Promise.all([si.currentLoad(), si.mem()]);
    return { cpu: Math.min(1, Math.max(0, (load.currentLoad ?? 0) / 100)), memUsedBytes: mem.active, memTotalBytes: mem.total };
  };
}

/** Reads the machine's CPU and memory (/proc on Linux, systeminformation elsewhere) and statfs (the data dir's disk). */
export function systemSample(dataDir: string, platform: NodeJS.Platform = process.platform): SampleFn {
  const cpuAndMemory = platform === 'linux' ? procReader() : systeminformationReader();
  return async () => {
    const [host, disk] = await Promise.all([cpuAndMemory(), statfs(dataDir).catch(() => undefined)]);
    const diskTotal = disk ? disk.blocks * disk.bsize : 0;
    return {
      sampledAt: Date.now(),
      cpu: host.cpu,
      cores: cpus().length,
      memUsedBytes: host.memUsedBytes,
      memTotalBytes: host.memTotalBytes,
      diskUsedBytes: disk ? diskTotal - disk.bavail * disk.bsize : 0,
      diskTotalBytes: diskTotal,
    };
  };
}

export function startHostSampler(sample: SampleFn, everyMs = 5_000): HostSampler {
  let latest: HostSnapshot | null = null;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let warned = false;

  const tick = async () => {
    try {
      const s = await sample();
      if (!stopped) latest = s;
    } catch (err) {
      // A failing probe (unusual OS, sandbox) leaves the last sample; say so once.
      if (!warned) console.error('kiln: host metrics unavailable:', err instanceof Error ? err.message : err);
      warned = true;
    }
    if (!stopped) {
      timer = setTimeout(tick, everyMs);
      timer.unref();
    }
  };
  void tick();

  return {
    latest: () => latest,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
