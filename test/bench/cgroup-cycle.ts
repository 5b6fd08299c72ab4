// A component figure, in-process (labelled as such, not a user's view): the
// CPU one run's cgroups cost the engine when each run makes and removes its
// own, against runs that reuse a finished run's (ReusedCgroups), on this
// host's real cgroups (root). Alternating rounds; medians with the spread.
//   tsx test/bench/cgroup-cycle.ts [--n 300] [--rounds 6]
import { cpuUsage } from 'node:process';
import { detectCgroups, type CgroupLimiter } from '../../engine/sandbox/cgroups';
import { ReusedCgroups } from '../../engine/sandbox/reused-cgroups';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const n = arg('--n', 300);
const rounds = arg('--rounds', 6);
const limits = { memoryBytes: 512 * 1024 * 1024, pids: 8192 };

async function cycle(limiter: CgroupLimiter, tag: string): Promise<number> {
  const start = cpuUsage();
  for (let i = 0; i < n; i++) {
    const cg = await limiter.create(`${tag}-${i}`, limits);
    const { removed } = await cg.finish();
    await removed;
  }
  const used = cpuUsage(start);
  return (used.user + used.system) / 1000 / n;
}

async function main() {
  const found = detectCgroups();
  if (!found.limiter) throw new Error(`no writable cgroups here: ${found.reason}`);
  const plain: number[] = [];
  const reused: number[] = [];
  for (let r = 0; r < rounds; r++) {
    plain.push(await cycle(found.limiter, `plain-${r}`));
    const pool = new ReusedCgroups({ ...found.limiter, name: found.limiter.name, enforces: found.limiter.enforces, create: (id, l) => found.limiter!.create(id, l), close: () => {} });
    reused.push(await cycle(pool, `reused-${r}`));
    await pool.close();
  }
  await found.limiter.close();
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const fmt = (a: number[]) => `${med(a).toFixed(3)} ms (${Math.min(...a).toFixed(3)}–${Math.max(...a).toFixed(3)})`;
  console.log(`${found.limiter.name}, in-process CPU per run (create + finish), ${rounds} rounds of ${n}:`);
  console.log(`  a cgroup per run: ${fmt(plain)}`);
  console.log(`  reused cgroups:   ${fmt(reused)}`);
}

void main();
