// The polite farm's bench rows. A CPU-bound foreground program (its own
// process, normal priority) counts loop iterations for a few seconds, with
// Kiln idle and then with Kiln in polite mode running a queue of CPU-bound
// actions (twice the cores): the second rate should be at least 0.9 of the
// first. And Kiln's own throughput on such a queue in all-out mode against a
// fixed-slots run (normal mode, one slot per core): at least 0.95.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { encode, type longrunning, reapi } from '../../engine/proto';
import { digestOf, EMPTY_DIR, upload, type Digest } from './actions';
import { median, ReapiClients, spread } from './lib';
import { startKiln } from './processes';
import { fmt, fmtSpread, verdict, type Row } from './report';

const CORES = availableParallelism();

/** An action that keeps one core busy for `seconds` (then exits 124, which is fine: it is never cached). */
function busyAction(seconds: number): { actionDigest: Digest; blobs: { digest: Digest; data: Buffer }[] } {
  const command = Buffer.from(
    encode(
      reapi.Command,
      reapi.Command.create({
        arguments: ['/usr/bin/timeout', String(seconds), '/bin/sh', '-c', 'while :; do :; done'],
        environmentVariables: [{ name: 'PATH', value: '/usr/bin:/bin' }],
      }),
    ),
  );
  const commandDigest = digestOf(command);
  const action = Buffer.from(
    encode(reapi.Action, reapi.Action.create({ commandDigest, inputRootDigest: EMPTY_DIR, doNotCache: true, salt: Buffer.from(randomUUID()) })),
  );
  const actionDigest = digestOf(action);
  return { actionDigest, blobs: [{ digest: commandDigest, data: command }, { digest: actionDigest, data: action }] };
}

/** Runs `n` busy actions of `seconds` each through Execute; resolves when all are done. */
async function runQueue(c: ReapiClients, n: number, seconds: number): Promise<void> {
  const actions = Array.from({ length: n }, () => busyAction(seconds));
  await upload(c, actions.flatMap((a) => a.blobs));
  await Promise.all(
    actions.map(async (a) => {
      const call = c.exec.execute(reapi.ExecuteRequest.create({ actionDigest: a.actionDigest, skipCacheLookup: true })) as grpc.ClientReadableStream<longrunning.Operation>;
      for await (const _ of call as AsyncIterable<longrunning.Operation>) void _;
    }),
  );
}

const FOREGROUND = `const end = Date.now() + Number(process.argv[1]); let n = 0; while (Date.now() < end) { for (let i = 0; i < 1e5; i++) n++; } process.stdout.write(String(n));`;

/** Loop iterations per millisecond of a foreground CPU-bound process over `ms`. */
function foregroundRate(ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', FOREGROUND, String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.once('error', reject);
    child.once('exit', () => resolve(Number(out) / ms));
  });
}

export async function politeRows(root: string, quick: boolean, log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const windowMs = quick ? 4_000 : 8_000;
  const repeats = quick ? 2 : 3;

  // --- foreground work rate: Kiln idle vs Kiln polite under a queue of 2× cores busy actions,
  // and, as a control that shows the measurement can tell, Kiln in normal mode under the same queue.
  const polite = await startKiln(join(root, 'kiln-polite'), ['--mode', 'polite']);
  const normal = await startKiln(join(root, 'kiln-normal'), ['--mode', 'normal', '--concurrency', String(CORES)]);
  const c = new ReapiClients(polite.address);
  const cn = new ReapiClients(normal.address);
  const idle: number[] = [];
  const loaded: number[] = [];
  const control: number[] = [];
  const beside = async (clients: ReapiClients) => {
    // Long enough to cover the window: the foreground starts a second after the queue.
    const queue = runQueue(clients, 2 * CORES, Math.ceil((windowMs + 3_000) / 1000));
    await new Promise((r) => setTimeout(r, 1_000));
    const rate = await foregroundRate(windowMs);
    await queue;
    return rate;
  };
  try {
    for (let rep = 0; rep < repeats; rep++) {
      log(`polite: foreground rate with Kiln idle ${rep + 1}/${repeats}`);
      idle.push(await foregroundRate(windowMs));
      log(`polite: foreground rate with Kiln polite running ${2 * CORES} busy actions ${rep + 1}/${repeats}`);
      loaded.push(await beside(c));
      log(`polite: foreground rate with Kiln normal running ${2 * CORES} busy actions (control) ${rep + 1}/${repeats}`);
      control.push(await beside(cn));
    }
  } finally {
    c.close();
    cn.close();
    await Promise.all([polite.stop(), normal.stop()]);
  }
  const i = spread(idle);
  const l = spread(loaded);
  rows.push({
    id: 'polite-foreground',
    metric: `foreground work rate, Kiln polite running ${2 * CORES} busy actions (iterations/ms, ${repeats}× ${windowMs / 1000} s)`,
    kiln: fmtSpread(l, 0),
    baseline: `${fmtSpread(i, 0)} Kiln idle`,
    comparison: `×${fmt(l.median / i.median, 2)} idle`,
    target: '≥ 0.9× idle',
    verdict: verdict(l.median / i.median, '>=', 0.9),
    figure: l.median / i.median,
    data: { idle: i, loaded: l },
  });
  const n0 = spread(control);
  rows.push({
    id: 'polite-foreground-control',
    metric: '  the same beside Kiln in normal mode (control: the measurement can tell)',
    kiln: fmtSpread(n0, 0),
    baseline: `${fmtSpread(i, 0)} Kiln idle`,
    comparison: `×${fmt(n0.median / i.median, 2)} idle`,
    target: '—',
    figure: n0.median / i.median,
    data: { idle: i, normal: n0 },
  });

  // --- throughput: all-out against fixed slots (normal mode, one per core), alternating.
  const n = (quick ? 2 : 4) * CORES;
  const seconds = 2;
  const times: Record<'all-out' | 'normal', number[]> = { 'all-out': [], normal: [] };
  for (let rep = 0; rep < repeats; rep++) {
    const order: ('all-out' | 'normal')[] = rep % 2 ? ['normal', 'all-out'] : ['all-out', 'normal'];
    for (const mode of order) {
      log(`polite: ${n} busy actions in ${mode} mode ${rep + 1}/${repeats}`);
      const kiln = await startKiln(join(root, `kiln-${mode}-${rep}`), ['--mode', mode, '--concurrency', String(CORES)]);
      const k = new ReapiClients(kiln.address);
      try {
        const t0 = performance.now();
        await runQueue(k, n, seconds);
        times[mode].push(n / ((performance.now() - t0) / 1000));
      } finally {
        k.close();
        await kiln.stop();
      }
    }
  }
  const a = spread(times['all-out']);
  const f = spread(times.normal);
  rows.push({
    id: 'allout-throughput',
    metric: `Kiln throughput, ${n} busy actions of ${seconds} s, all-out mode (actions/s)`,
    kiln: fmtSpread(a, 2),
    baseline: `${fmtSpread(f, 2)} fixed slots`,
    comparison: `×${fmt(a.median / f.median, 2)} fixed`,
    target: '≥ 0.95× fixed slots',
    verdict: verdict(a.median / f.median, '>=', 0.95),
    figure: a.median / f.median,
    data: { allOut: a, fixed: f, medianIdle: median(idle) },
  });
  return rows;
}
