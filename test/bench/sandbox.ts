// The sandbox's bench row: what bubblewrap (and its cgroup) add to one trivial
// uncached action. Two Kilns run side by side, one with --sandbox off and one
// with --sandbox on, and the same client alternates rounds of round trips
// between them, so both see the same load. The CPU figure is everything each
// Kiln spent per action, the engine, its launcher and every process of the
// action (cpu-account.ts), where the bench can make a cpuacct group; elsewhere
// only what the launcher reaped (bwrap and what it waited for).
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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

/** The unprivileged user a non-root serve runs as. */
const NOBODY = 65534;

/** Why a non-root serve's sandbox cannot be measured here (dropping to nobody takes root and setpriv), or undefined. */
export function nonRootSandboxMissing(): string | undefined {
  const missing = sandboxMissing();
  if (missing) return missing;
  if (process.getuid?.() !== 0) return 'starting a serve as an unprivileged user needs root';
  const asNobody = ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups'];
  const probe = spawnSync('setpriv', [...asNobody, 'bwrap', '--unshare-all', '--ro-bind', '/', '/', '/bin/true'], { stdio: 'ignore' });
  if (probe.error) return 'setpriv (util-linux) is not installed';
  if (probe.status !== 0) return 'bubblewrap cannot make a sandbox as an unprivileged user here (user namespaces disabled?)';
  return undefined;
}

/** The actions' CPU so far, fallback: everything the engine's launcher processes have reaped. */
function reapedByLaunchersMs(server: Server): number {
  return childPids(server.pid).reduce((sum, pid) => sum + reapedCpuMs(pid), 0);
}

/**
 * `nonRoot`: both Kilns run as nobody, as on a desk (the rows are labelled so):
 * no uid per action, so no slot made by root; what `sandbox: auto` costs there.
 */
export async function sandboxRows(
  root: string,
  sizes: { rounds: number; perRound: number },
  log: (s: string) => void,
  servers: Server[],
  opts: { nonRoot?: boolean } = {},
): Promise<Row[]> {
  // A non-root Kiln's data folders: its own, in a folder it can reach (the bench's root is 0700, root's).
  // Not under /tmp: a non-root Kiln makes no slot over a build folder there (a slot empties its /tmp).
  const home = opts.nonRoot ? mkdtempSync(join('/var/tmp', 'kiln-bench-nonroot-')) : root;
  if (opts.nonRoot) chmodSync(home, 0o711);
  const dataDir = (name: string) => {
    const dir = join(home, name);
    if (opts.nonRoot) {
      mkdirSync(dir, { mode: 0o700 });
      chownSync(dir, NOBODY, NOBODY);
    }
    return dir;
  };
  const as = opts.nonRoot ? { asUid: NOBODY } : {};
  const plain = await startKiln(dataDir('sandbox-off'), ['--sandbox', 'off'], [], as);
  servers.push(plain);
  const boxed = await startKiln(dataDir('sandbox-on'), ['--sandbox', 'on'], [], as);
  servers.push(boxed);
  const id = opts.nonRoot ? 'sandbox-nonroot' : 'sandbox';
  const who = opts.nonRoot ? ' (non-root serve, as nobody)' : '';
  for (const line of boxed.startup ?? []) if (/^kiln: sandbox/.test(line)) log(line);
  log(`${id}: kiln serve${who} --sandbox off pid ${plain.pid}, --sandbox on pid ${boxed.pid}; ${sizes.rounds} alternating rounds of ${sizes.perRound}`);
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
    if (accounts.size || opts.nonRoot) await Promise.all([plain.stop(), boxed.stop()]);
    for (const account of accounts.values()) account.close();
    if (opts.nonRoot) rmSync(home, { recursive: true, force: true });
  }
  const off = spread(wall.off);
  const on = spread(wall.on);
  const extra = on.median - off.median;
  const cpuOff = spread(cpu.off);
  const cpuOn = spread(cpu.on);
  return [
    {
      id,
      metric: `sandboxed trivial action round trip${who} (ms, p50 of ${sizes.rounds}×${sizes.perRound}, alternating)`,
      kiln: fmtSpread(on, 2),
      baseline: `${fmtSpread(off, 2)} unsandboxed`,
      comparison: `+${fmt(extra, 2)} ms (×${fmt(on.median / off.median, 2)})`,
      target: `≤ unsandboxed + ${SANDBOX_BUDGET_MS} ms`,
      verdict: verdict(on.median, '<=', off.median + SANDBOX_BUDGET_MS),
      figure: extra,
      data: { sandboxed: on, unsandboxed: off },
    },
    {
      id: `${id}-cpu`,
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
