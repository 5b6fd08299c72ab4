// Two builds (or two flag sets) of kiln serve side by side, measured in
// interleaved rounds from one client process: A, B, A, B, … On a shared
// machine whose load swings from minute to minute, two runs one after the
// other meet different loads; rounds a few seconds apart meet nearly the same,
// so the per-round difference is the firmer figure. Each round sends uncached
// /bin/true actions, sequentially (round trip p50) and then N in flight
// (server CPU per action from /proc: the engine and its launchers, not the
// actions), and the medians over rounds are printed with the spread.
//   tsx test/bench/ab.ts --a DIST_A [--b DIST_B] [--a-arg FLAG]… [--b-arg FLAG]… [--rounds 8] [--n 150] [--in-flight 4]
// DIST_* are folders like dist/ (a copy of an older build); B defaults to dist/.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spread } from './lib';
import { ClientProcess, REPO, cpuBetween, serverCpu, serverCpuWhenQuiet, startKiln, type Server } from './processes';

function args(name: string): string[] {
  return process.argv.flatMap((a, i) => (a === name ? [process.argv[i + 1]] : []));
}
const arg = (name: string, fallback: string) => args(name)[0] ?? fallback;

interface Side {
  name: string;
  dist: string;
  flags: string[];
  kiln?: Server;
  roundTrip: number[];
  cpu: number[];
  rate: number[];
}

async function start(side: Side, dir: string): Promise<Server> {
  // startKiln reads the build to run from KILN_BENCH_DIST.
  const before = process.env.KILN_BENCH_DIST;
  process.env.KILN_BENCH_DIST = side.dist;
  try {
    return await startKiln(join(dir, side.name), side.flags);
  } finally {
    if (before === undefined) delete process.env.KILN_BENCH_DIST;
    else process.env.KILN_BENCH_DIST = before;
  }
}

async function main(): Promise<void> {
  const rounds = Number(arg('--rounds', '8'));
  const n = Number(arg('--n', '150'));
  const inFlight = Number(arg('--in-flight', '4'));
  const sides: Side[] = [
    { name: 'A', dist: resolve(arg('--a', join(REPO, 'dist'))), flags: args('--a-arg'), roundTrip: [], cpu: [], rate: [] },
    { name: 'B', dist: resolve(arg('--b', join(REPO, 'dist'))), flags: args('--b-arg'), roundTrip: [], cpu: [], rate: [] },
  ];
  const dir = mkdtempSync(join(tmpdir(), 'kiln-ab-'));
  const client = new ClientProcess();
  const load0 = loadavg()[0];
  try {
    for (const s of sides) {
      s.kiln = await start(s, dir);
      console.log(`${s.name}: ${s.dist} ${s.flags.join(' ')} (pid ${s.kiln.pid})`);
      // Warm-up: JIT, the launchers (the spare starts at the first overlap), the first store writes.
      await client.run({ kind: 'actionRate', address: s.kiln.address, total: 100, inFlight, warmup: 0 });
    }
    for (let r = 0; r < rounds; r++) {
      // Alternate which side goes first, so neither always follows the other.
      for (const s of r % 2 ? [...sides].reverse() : sides) {
        const k = s.kiln!;
        const trips = await client.run({ kind: 'roundTrips', address: k.address, count: 40, warmup: 5 });
        const totals = trips.map((t) => t.findMissing + t.batchUpdate + t.execute).sort((a, b) => a - b);
        s.roundTrip.push(totals[Math.floor(totals.length / 2)]);
        const before = serverCpu(k.pid);
        s.rate.push(await client.run({ kind: 'actionRate', address: k.address, total: n, inFlight, warmup: 0 }));
        s.cpu.push(cpuBetween(before, await serverCpuWhenQuiet(k.pid)) / n);
      }
      console.log(`round ${r + 1}: ${sides.map((s) => `${s.name} rt ${s.roundTrip[r].toFixed(2)} ms, cpu ${s.cpu[r].toFixed(2)} ms/action, ${s.rate[r].toFixed(0)}/s`).join(' | ')} (load ${loadavg()[0].toFixed(2)})`);
    }
    const f = (v: number[]) => {
      const s = spread(v);
      return `${s.median.toFixed(2)} (${s.kind} ${s.lo.toFixed(2)}–${s.hi.toFixed(2)})`;
    };
    const diff = (pick: (s: Side) => number[]) => f(pick(sides[1]).map((b, i) => b - pick(sides[0])[i]));
    console.log(`\nmedians over ${rounds} rounds (spread), load ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}`);
    console.log(`round trip p50 (ms)        A ${f(sides[0].roundTrip)}  B ${f(sides[1].roundTrip)}  B−A per round ${diff((s) => s.roundTrip)}`);
    console.log(`server CPU/action, ${inFlight} in flight A ${f(sides[0].cpu)}  B ${f(sides[1].cpu)}  B−A per round ${diff((s) => s.cpu)}`);
    console.log(`actions/s, ${inFlight} in flight         A ${f(sides[0].rate)}  B ${f(sides[1].rate)}  B−A per round ${diff((s) => s.rate)}`);
  } finally {
    client.close();
    await Promise.all(sides.map((s) => s.kiln?.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
