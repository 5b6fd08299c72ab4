// Server CPU per trivial action, for profiling the per-action path: starts
// `kiln serve` from dist/ (optionally under --cpu-prof), sends bursts of
// uncached /bin/true actions from a separate client process, and prints the
// CPU the engine and its launcher spent per action (from /proc, the actions
// themselves excluded). CPU rather than wall time, so it stays meaningful on a
// shared machine.
//   tsx test/bench/burst.ts [--n 500] [--rounds 3] [--in-flight 4] [--cpu-prof DIR] [--kiln-arg FLAG]…
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { ClientProcess, ownCpuMs, serverCpu, serverCpuWhenQuiet, startKiln } from './processes';

/** utime and stime of a process, in clock ticks. */
function userSys(pid: number): [number, number] {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return [Number(f[11]), Number(f[12])];
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  const n = Number(arg('--n', '500'));
  const rounds = Number(arg('--rounds', '3'));
  const inFlight = Number(arg('--in-flight', '4'));
  const prof = process.argv.includes('--cpu-prof') ? arg('--cpu-prof', '') : undefined;
  // Flags for the measured kiln serve (e.g. --kiln-arg --action-user --kiln-arg none), for A/B runs.
  const kilnArgs = process.argv.flatMap((a, i) => (a === '--kiln-arg' ? [process.argv[i + 1]] : []));
  const dir = mkdtempSync(join(tmpdir(), 'kiln-burst-'));
  const kiln = await startKiln(dir, kilnArgs, prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []);
  const client = new ClientProcess();
  console.log(`kiln serve pid ${kiln.pid}`);
  try {
    // Warm-up: JIT, the launcher, the first store writes.
    await client.run({ kind: 'actionRate', address: kiln.address, total: 100, inFlight, warmup: 0 });
    for (let r = 0; r < rounds; r++) {
      const before = serverCpu(kiln.pid);
      const [u0, s0] = userSys(kiln.pid);
      const rate = await client.run({ kind: 'actionRate', address: kiln.address, total: n, inFlight, warmup: 0 });
      const after = await serverCpuWhenQuiet(kiln.pid); // with what Kiln did after the burst
      const [u1, s1] = userSys(kiln.pid);
      const engine = (ownCpuMs(kiln.pid) - before.get(kiln.pid)!) / n;
      let helpers = 0;
      for (const [pid, ms] of after) if (pid !== kiln.pid) helpers += ms - (before.get(pid) ?? 0);
      console.log(
        `round ${r + 1}: ${n} actions, ${inFlight} in flight: engine ${engine.toFixed(2)} ms/action (${Math.round((100 * (u1 - u0)) / (u1 - u0 + s1 - s0))}% user), launcher ${(helpers / n).toFixed(2)} ms/action, ` +
          `total ${(engine + helpers / n).toFixed(2)} ms/action, ${rate.toFixed(0)} actions/s (load ${loadavg()[0].toFixed(2)})`,
      );
    }
  } finally {
    client.close();
    await kiln.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
