// The sandbox's bench row: what bubblewrap (and its cgroup) add to one trivial
// uncached action. Two Kilns run side by side, one with --sandbox off and one
// with --sandbox on, and the same client alternates rounds of round trips
// between them, so both see the same load. The CPU figure is everything each
// Kiln spent per action, the engine, its launcher and every process of the
// action (cpu-account.ts), where the bench can make a cpuacct group; elsewhere
// only what the launcher reaped (bwrap and what it waited for).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { median, spread } from './lib';
import { CpuAccount } from './cpu-account';
import { ClientProcess, childPids, descendantPids, reapedCpuMs, startKiln, type Server } from './processes';
import { fmt, fmtSpread, verdict, type Row } from './report';

/** The budget: a sandboxed trivial action costs at most this much more than an unsandboxed one. */
export const SANDBOX_BUDGET_MS = 3;

/** Why the sandbox cannot be measured here, or undefined. */
export function sandboxMissing(): string | undefined {
  if (process.platform !== 'linux') return `bubblewrap sandboxes only on Linux (this is ${process.platform})`;
  const probe = spawnSync('bwrap', ['--ro-bind', '/', '/', '/bin/true'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) return 'bubblewrap (bwrap) is missing or cannot create a sandbox here';
  return undefined;
}

/** The actions' CPU so far, fallback: everything the engine's launcher processes have reaped. */
function reapedByLaunchersMs(server: Server): number {
  return childPids(server.pid).reduce((sum, pid) => sum + reapedCpuMs(pid), 0);
}

export async function sandboxRows(root: string, sizes: { rounds: number; perRound: number }, log: (s: string) => void, servers: Server[]): Promise<Row[]> {
  const plain = await startKiln(join(root, 'sandbox-off'), ['--sandbox', 'off']);
  servers.push(plain);
  const boxed = await startKiln(join(root, 'sandbox-on'), ['--sandbox', 'on']);
  servers.push(boxed);
  log(`sandbox: kiln serve --sandbox off pid ${plain.pid}, --sandbox on pid ${boxed.pid}; ${sizes.rounds} alternating rounds of ${sizes.perRound}`);
  const accounts = new Map<Server, CpuAccount>();
  for (const server of [plain, boxed]) {
    // Every process already below the Kiln: its launchers, and a slot's sandbox with the agent inside.
    const account = CpuAccount.around([server.pid, ...descendantPids(server.pid)], `kiln-bench-${server.pid}`);
    if (account) accounts.set(server, account);
  }
  const whole = accounts.size === 2;
  const cpuMs = (server: Server) => (whole ? accounts.get(server)!.usageMs() : reapedByLaunchersMs(server));
  const client = new ClientProcess();
  const wall = { off: [] as number[], on: [] as number[] };
  const cpu = { off: [] as number[], on: [] as number[] };
  try {
    for (let r = 0; r < sizes.rounds; r++) {
      for (const [name, server] of [['off', plain], ['on', boxed]] as const) {
        const before = cpuMs(server);
        const trips = await client.run({ kind: 'roundTrips', address: server.address, count: sizes.perRound, warmup: 5 });
        wall[name].push(median(trips.map((t) => t.total)));
        cpu[name].push((cpuMs(server) - before) / (sizes.perRound + 5));
      }
    }
  } finally {
    client.close();
    if (accounts.size) {
      await Promise.all([plain.stop(), boxed.stop()]);
      for (const account of accounts.values()) account.close();
    }
  }
  const off = spread(wall.off);
  const on = spread(wall.on);
  const extra = on.median - off.median;
  const cpuOff = spread(cpu.off);
  const cpuOn = spread(cpu.on);
  return [
    {
      id: 'sandbox',
      metric: `sandboxed trivial action round trip (ms, p50 of ${sizes.rounds}×${sizes.perRound}, alternating)`,
      kiln: fmtSpread(on, 2),
      baseline: `${fmtSpread(off, 2)} unsandboxed`,
      comparison: `+${fmt(extra, 2)} ms (×${fmt(on.median / off.median, 2)})`,
      target: `≤ unsandboxed + ${SANDBOX_BUDGET_MS} ms`,
      verdict: verdict(on.median, '<=', off.median + SANDBOX_BUDGET_MS),
      figure: extra,
      data: { sandboxed: on, unsandboxed: off },
    },
    {
      id: 'sandbox-cpu',
      metric: whole
        ? '  CPU per action, engine + launcher + every process of the action (ms, cpuacct)'
        : '  CPU of the processes the launcher reaped per action (ms; misses what bwrap does not reap)',
      kiln: fmtSpread(cpuOn, 2),
      baseline: `${fmtSpread(cpuOff, 2)} unsandboxed`,
      comparison: `+${fmt(cpuOn.median - cpuOff.median, 2)} ms`,
      target: '—',
      figure: cpuOn.median - cpuOff.median,
      data: { sandboxed: cpuOn, unsandboxed: cpuOff },
    },
  ];
}
