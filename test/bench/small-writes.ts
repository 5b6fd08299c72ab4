// Server cost of small writes, as Bazel makes them: `kiln serve` (from dist/, or
// KILN_BENCH_DIST) in its own process, a client in another sending BatchUpdateBlobs
// of 50 small random blobs, two requests in flight (Bazel's --jobs=2), then
// UpdateActionResult calls, two in flight. Prints server CPU and wall per blob and per
// entry. With --strace, `strace -c -f` is attached to the server for the blob phase
// (its counts go to stderr when it detaches). With --actions N, N uncached trivial
// actions are sent instead, one at a time, and --strace counts their system calls
// (fsync and fdatasync per action, say).
//
//   npx tsx test/bench/small-writes.ts [--blobs 1000] [--entries 300] [--strace]
//   npx tsx test/bench/small-writes.ts --actions 100 --strace
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { reapi } from '../../engine/proto';
import { connectClients } from '../helpers';
import { digestOf, roundTrip } from './actions';
import { ReapiClients, addressOf } from './lib';
import { cpuBetween, serverCpu, startKiln } from './processes';

const BATCH = 50;
const IN_FLIGHT = 2;

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function inFlight(total: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < total) await one(next++);
    }),
  );
}

async function main(): Promise<void> {
  const blobs = option('--blobs', 1000);
  const entries = option('--entries', 300);
  const strace = process.argv.includes('--strace');
  const dataDir = await mkdtemp(join(tmpdir(), 'kiln-small-writes-'));
  const kiln = await startKiln(dataDir);
  const c = connectClients(kiln.address);
  try {
    const actions = option('--actions', 0);
    if (actions > 0) return await traceActions(kiln.pid, kiln.address, actions, strace);
    // Warm-up: the first calls pay for connections and lazy set-up.
    await c.cas.batchUpdate({ requests: [randomBytes(100)].map((data) => ({ digest: digestOf(data), data })) });
    const requests = Array.from({ length: Math.ceil(blobs / BATCH) }, () =>
      Array.from({ length: BATCH }, () => randomBytes(200 + Math.floor(Math.random() * 3800))).map((data) => ({ digest: digestOf(data), data })),
    );
    let tracer: ReturnType<typeof spawn> | undefined;
    if (strace) {
      tracer = spawn('strace', ['-c', '-f', '-p', String(kiln.pid)], { stdio: ['ignore', 'inherit', 'inherit'] });
      await new Promise((r) => setTimeout(r, 1000));
    }
    let cpu0 = serverCpu(kiln.pid);
    let t0 = process.hrtime.bigint();
    await inFlight(requests.length, async (i) => {
      const res = await c.cas.batchUpdate({ requests: requests[i]! });
      for (const r of res.responses) if ((r.status?.code ?? 0) !== 0) throw new Error(`blob refused: ${r.status?.message}`);
    });
    const blobWallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const blobCpuMs = cpuBetween(cpu0, serverCpu(kiln.pid));
    if (tracer) {
      tracer.kill('SIGINT');
      await new Promise((r) => tracer!.once('exit', r));
    }

    const results = Array.from({ length: entries }, (_, i) => ({
      actionDigest: digestOf(randomBytes(32)),
      actionResult: reapi.ActionResult.create({ exitCode: 0, stdoutRaw: Buffer.from(`entry ${i}`) }),
    }));
    cpu0 = serverCpu(kiln.pid);
    t0 = process.hrtime.bigint();
    await inFlight(entries, async (i) => {
      await c.actionCache.update(results[i]!);
    });
    const acWallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const acCpuMs = cpuBetween(cpu0, serverCpu(kiln.pid));
    const n = requests.length * BATCH;
    console.log(
      JSON.stringify({
        dist: process.env.KILN_BENCH_DIST ?? 'dist',
        load: loadavg()[0]!.toFixed(1),
        blobs: n,
        cpuMsPerBlob: +(blobCpuMs / n).toFixed(3),
        wallMsPerBlob: +(blobWallMs / n).toFixed(3),
        entries,
        cpuMsPerEntry: +(acCpuMs / entries).toFixed(3),
        wallMsPerEntry: +(acWallMs / entries).toFixed(3),
      }),
    );
  } finally {
    c.close();
    await kiln.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** N sequential uncached trivial actions, with strace attached to the server if asked. */
async function traceActions(pid: number, address: string, n: number, strace: boolean): Promise<void> {
  const c = new ReapiClients(addressOf(address));
  try {
    for (let i = 0; i < 5; i++) await roundTrip(c); // warm-up
    const tracer = strace ? spawn('strace', ['-c', '-f', '-p', String(pid)], { stdio: ['ignore', 'inherit', 'inherit'] }) : undefined;
    if (tracer) await new Promise((r) => setTimeout(r, 1000));
    const cpu0 = serverCpu(pid);
    const totals: number[] = [];
    for (let i = 0; i < n; i++) totals.push((await roundTrip(c)).total);
    const cpuMs = cpuBetween(cpu0, serverCpu(pid));
    if (tracer) {
      tracer.kill('SIGINT');
      await new Promise((r) => tracer.once('exit', r));
    }
    totals.sort((a, b) => a - b);
    console.log(JSON.stringify({ dist: process.env.KILN_BENCH_DIST ?? 'dist', load: loadavg()[0]!.toFixed(1), actions: n, cpuMsPerAction: +(cpuMs / n).toFixed(2), p50RoundTripMs: +totals[Math.floor(n / 2)]!.toFixed(2) }));
  } finally {
    c.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
