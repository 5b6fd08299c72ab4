// Ranks a V8 CPU profile (node --cpu-prof) by self and total time per
// function and per source file, divided by the number of actions the profile
// covers, so a profile of a burst of trivial actions reads as "ms per action".
//   tsx test/bench/profile-rank.ts FILE.cpuprofile --actions N [--top 30] [--from US --to US]
// --from/--to keep only the samples taken in that window, in microseconds of
// CLOCK_MONOTONIC (V8's clock; process.hrtime.bigint() / 1000n in another process).
// Total time counts a function once per sample however deep it recurses.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  startTime: number;
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** A short, readable place for a call frame: package or file, and line. */
function where(url: string): string {
  if (!url) return '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + '/dist/'.length);
  return url.startsWith('node:') ? url : basename(url);
}

function main(): void {
  const file = process.argv[2];
  const actions = Number(arg('--actions', '1'));
  const top = Number(arg('--top', '30'));
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // Time per sample: V8 gives the delta before each sample; the next sample's delta is this one's length.
  const from = Number(arg('--from', '-Infinity'));
  const to = Number(arg('--to', 'Infinity'));
  const selfUs = new Map<number, number>();
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i];
    if (at < from || at > to) continue;
    const dt = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + dt);
  }
  const fnKey = (n: Node) => `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  const fileKey = (n: Node) => where(n.callFrame.url);
  const idle = new Set(['(idle)', '(program)', '(garbage collector)']);

  const fnSelf = new Map<string, number>();
  const fnTotal = new Map<string, number>();
  const fileSelf = new Map<string, number>();
  const fileTotal = new Map<string, number>();
  let busy = 0;
  let idleUs = 0;
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    if (n.callFrame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    busy += us;
    add(fnSelf, fnKey(n), us);
    add(fileSelf, fileKey(n), us);
    const seenFn = new Set<string>();
    const seenFile = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = byId.get(cur)!;
      if (c.callFrame.functionName === '(root)') break;
      const fk = fnKey(c);
      if (!seenFn.has(fk)) (seenFn.add(fk), add(fnTotal, fk, us));
      const fl = fileKey(c);
      if (!idle.has(c.callFrame.functionName) && !seenFile.has(fl)) (seenFile.add(fl), add(fileTotal, fl, us));
    }
  }
  const ms = (us: number) => (us / 1000 / actions).toFixed(3).padStart(7);
  const print = (title: string, m: Map<string, number>) => {
    console.log(`\n${title} (ms per action, % of busy)`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top))
      console.log(`${ms(v)}  ${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`);
  };
  console.log(`${file}: busy ${ms(busy)} ms per action over ${actions} actions, idle ${(idleUs / 1e6).toFixed(1)} s`);
  print('self by function', fnSelf);
  print('total by function', fnTotal);
  print('self by file', fileSelf);
  print('total by file', fileTotal);
}

main();
