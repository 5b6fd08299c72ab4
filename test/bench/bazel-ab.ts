// Old against new on a real Bazel build: `kiln serve` from two (or more) copies
// of dist/ side by side, clean builds of one fixture alternated between them on
// one warm Bazel server (every other repeat in reverse order), and Kiln's CPU
// per remote action from /proc (serve and its children, not the actions), with
// the split by thread: serve's main thread, its other threads (libuv's pool,
// V8, worker threads) and the launcher. Each Kiln's first build, which uploads
// every blob, is reported on its own.
//
//   cp -r dist /tmp/kiln-old/dist   (at the old commit; the copy must sit where node_modules resolves,
//                                    e.g. under test-output/)
//   npx tsx test/bench/bazel-ab.ts test-output/old/dist dist
//
// Environment: REPS (builds per Kiln, default 2), FIXTURE (many_genrules or
// many_cc), PROF=DIR (each serve writes a V8 CPU profile to DIR/<index>),
// STRACE=FILE (strace -f the first measured build of each, to FILE.<index>;
// STRACE_ARGS, default -c). Heavy: run it under the shared lock.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { BazelDriver, type Fixture } from './bazel';
import { serverCpu, serverCpuWhenQuiet, cpuBetween, kilnPids } from './processes';
import { readFileSync, readdirSync } from 'node:fs';
import { ENGINE_V8_FLAGS } from '../../engine/util/v8-flags';

/** CPU ms (CLK_TCK 100) by thread over a process and its children: each main thread, the rest by name. */
function threads(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of kilnPids(pid)) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      continue; // gone meanwhile
    }
    for (const t of tids) {
      try {
        const st = readFileSync(`/proc/${p}/task/${t}/stat`, 'utf8');
        const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        const key = `${p === pid ? 'serve' : 'child'}:${t === String(p) ? 'main' : name.replace(/\d+$/, '')}:`;
        m.set(key + 'user', (m.get(key + 'user') ?? 0) + Number(f[11]) * 10);
        m.set(key + 'sys', (m.get(key + 'sys') ?? 0) + Number(f[12]) * 10);
      } catch {
        // a thread that ended meanwhile
      }
    }
  }
  return m;
}

async function start(dist: string, prof?: string) {
  const data = mkdtempSync(join(tmpdir(), 'kiln-ab-'));
  // The engine's V8 flags given, so serve does not relaunch itself and the pid measured is the engine's.
  const node = [...ENGINE_V8_FLAGS, ...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : [])];
  const child = spawn(process.execPath, [...node, join(dist, 'engine/cli.js'), 'serve', '--port', '0', '--http-port', '0', '--data-dir', data], { stdio: ['ignore', 'pipe', 'pipe'] });
  const addr = await new Promise<string>((res, rej) => {
    let buf = '';
    const on = (d: Buffer) => { buf += d; const m = buf.match(/kiln listening grpc:\/\/(\S+)/); if (m) res(m[1]); };
    child.stdout!.on('data', on); child.stderr!.on('data', on);
    child.once('exit', (c) => rej(new Error('exit ' + c + buf)));
  });
  return { pid: child.pid!, addr, stop: async () => { child.kill('SIGTERM'); await new Promise((r) => child.once('exit', r)); rmSync(data, { recursive: true, force: true }); } };
}

async function main() {
  const args = process.argv.slice(2);
  const reps = Number(process.env.REPS ?? 2);
  const fixture = (process.env.FIXTURE ?? 'many_genrules') as Fixture;
  const dists = args;
  const driver = new BazelDriver('/usr/bin/bazel-4');
  try {
    await driver.warm();
    const servers = [] as Awaited<ReturnType<typeof start>>[];
    for (const [i, d] of dists.entries()) servers.push(await start(d, process.env.PROF ? `${process.env.PROF}/${i}` : undefined));
    // one warm-up build each, not counted
    for (const [i, s] of servers.entries()) {
      const b = serverCpu(s.pid);
      const k = await driver.build(fixture, s.addr);
      console.log(`${dists[i]} first build (uploads everything): ${(cpuBetween(b, serverCpu(s.pid)) / k.remoteActions).toFixed(2)} ms/action, ${k.seconds.toFixed(2)} s`);
    }
    const res: Record<string, { cpu: number[]; s: number[] }> = {};
    for (let r = 0; r < reps; r++) {
      const order = servers.map((s, i) => i);
      if (r % 2) order.reverse();
      for (const i of order) {
        const s = servers[i];
        const tracer = process.env.STRACE && r === 0
          ? spawn('strace', [...(process.env.STRACE_ARGS ?? '-c').split(' '), '-f', '-o', `${process.env.STRACE}.${i}`, '-p', String(s.pid)], { stdio: 'ignore' })
          : undefined;
        if (tracer) await new Promise((res) => setTimeout(res, 1500));
        const b = serverCpu(s.pid);
        const tb = threads(s.pid);
        const k = await driver.build(fixture, s.addr);
        // Once quiet: what Kiln put off until after the build (exec roots' removal) counts.
        const after = await serverCpuWhenQuiet(s.pid);
        const ta = threads(s.pid);
        if (tracer) { tracer.kill('SIGINT'); await new Promise((res) => tracer.once('exit', res)); }
        const parts = [...ta].map(([n, v]) => [n, (v - (tb.get(n) ?? 0)) / k.remoteActions] as const).filter(([, v]) => v > 0.05);
        console.log('  threads: ' + parts.map(([n, v]) => `${n}=${v.toFixed(2)}`).join(' '));
        const cpu = cpuBetween(b, after) / k.remoteActions;
        (res[dists[i]] ??= { cpu: [], s: [] }).cpu.push(cpu);
        res[dists[i]].s.push(k.seconds);
        console.log(`${dists[i]} rep ${r}: ${cpu.toFixed(2)} ms/action, ${k.seconds.toFixed(2)} s, ${k.remoteActions} remote, load ${loadavg()[0].toFixed(2)}`);
      }
    }
    for (const s of servers) await s.stop();
    console.log(JSON.stringify(res));
  } finally {
    await driver.close();
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
