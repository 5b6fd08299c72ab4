// The measuring side of sandbox-spawn.ts, run as the unprivileged user it
// measures for: spawns each command line in turn, rounds alternating in order,
// and prints per spawn the wall time and the CPU of everything reaped (the
// children's user+system time from /proc/self/stat, so a sandbox's helpers
// count too). Plain Node, no imports beyond it: the parent stays small and the
// same for every command.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const [variantsJson, roundsArg, perRoundArg] = process.argv.slice(2);
const variants = JSON.parse(variantsJson) as Record<string, string[]>;
const rounds = Number(roundsArg);
const perRound = Number(perRoundArg);
/** Clock ticks per second (USER_HZ): 100 on every Linux this runs on. */
const TICKS = 100;

function reapedCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // cutime and cstime: fields 16 and 17 of stat, 14 and 15 after the name and state.
  return ((Number(f[13]) + Number(f[14])) * 1000) / TICKS;
}

function once(argv: string[]): void {
  const r = spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' });
  if (r.error || r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.error?.message ?? `exit ${r.status ?? r.signal}`}`);
}

const names = Object.keys(variants);
const out: Record<string, { wall: number[]; cpu: number[] }> = Object.fromEntries(names.map((n) => [n, { wall: [], cpu: [] }]));
for (let i = 0; i < 5; i++) for (const n of names) once(variants[n]);
for (let r = 0; r < rounds; r++) {
  for (const n of r % 2 ? [...names].reverse() : names) {
    const cpu0 = reapedCpuMs();
    const t0 = performance.now();
    for (let i = 0; i < perRound; i++) once(variants[n]);
    out[n].wall.push((performance.now() - t0) / perRound);
    out[n].cpu.push((reapedCpuMs() - cpu0) / perRound);
  }
}
process.stdout.write(JSON.stringify(out));
