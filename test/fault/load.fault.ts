// A load run: thousands of Execute calls on many connections fill the queue of a
// `kiln serve` with 2 slots (slow `sleep` actions), the rest get RESOURCE_EXHAUSTED,
// while a prober on its own connection times GetCapabilities and GetActionResult.
// Cheap calls must stay cheap while the queue is full, the first QUEUED message must
// come promptly, and RSS must come back near its baseline once the load is gone.
// KILN_FAULT_LOAD_CALLS (default 2000), KILN_FAULT_LOAD_CONNECTIONS (32) and
// KILN_FAULT_LOAD_SECONDS (8) size the run; the full run is 10000 on 64.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../../engine/digest';
import { Status } from '../helpers';
import { CheapCallProbe, ms, quantile, rssOf } from './load-driver';
import type { LoadResult } from './load-generator';
import { sleep, startServer, type ServerProcess } from './server';

const num = (name: string, fallback: number) => Math.max(1, Number(process.env[name] ?? fallback) || fallback);
const CALLS = num('KILN_FAULT_LOAD_CALLS', 2000);
const CONNECTIONS = num('KILN_FAULT_LOAD_CONNECTIONS', 32);
const LOAD_SECONDS = num('KILN_FAULT_LOAD_SECONDS', 8);
const QUEUE_SIZE = 200;
const SLOTS = 2;

/**
 * The bars, lenient for a loaded 2-core CI machine (the is p99 ≤ 50 ms on a
 * quiet one; the real figures are printed). Before the fixes this run measured
 * GetCapabilities p99 in seconds, which this bar still catches; a CI run sharing the
 * machine with other work (load average near 10) measured 354 ms, which is not the
 * starvation it is here for.
 */
const CHEAP_P99_MS = 1_000;
/** The prober must not be starved: at least this many cheap calls a second while loaded (a stall shows here before p99). */
const CHEAP_CALLS_PER_SECOND = 10;
/** Includes the generator's own client work; 10000 calls measured 4.6 s before the early refusal, 2.0 s after. */
const FIRST_QUEUED_P50_MS = 5_000;
/** RSS after the load drains, over its baseline: V8 keeps some heap it grew; a per-call leak would scale with CALLS. */
const RSS_SLACK_BYTES = 64 * 1024 * 1024 + CALLS * 4 * 1024;

let server: ServerProcess;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'kiln-fault-load-'));
  server = await startServer(dataDir, ['--cache-size', '1GiB', '--concurrency', String(SLOTS), '--queue-size', String(QUEUE_SIZE)]);
});
afterAll(async () => {
  await server?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** The load generator as a child process (see load-generator.ts). */
function startGenerator(address: string) {
  const script = join(__dirname, 'load-generator.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, address, String(CALLS), String(CONNECTIONS), String(LOAD_SECONDS)], {
    cwd: join(__dirname, '../..'),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const seen: string[] = [];
  const waiters: { prefix: string; resolve: (l: string) => void }[] = [];
  lines.on('line', (l) => {
    const w = waiters.find((x) => l.startsWith(x.prefix));
    if (w) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(l);
    } else seen.push(l);
  });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`load generator exited (${code})`))));
  exited.catch(() => undefined);
  return {
    /** The first line starting with `prefix`. */
    line: (prefix: string) =>
      Promise.race([
        new Promise<string>((resolve) => {
          const had = seen.find((l) => l.startsWith(prefix));
          if (had) resolve(had);
          else waiters.push({ prefix, resolve });
        }),
        exited,
      ]),
    go: () => child.stdin!.write('go\n'),
  };
}

function summary(label: string, values: number[]): string {
  return `${label} n=${values.length} p50 ${ms(quantile(values, 0.5))} p99 ${ms(quantile(values, 0.99))} max ${ms(Math.max(...values))}`;
}

describe('load: a full execution queue', () => {
  it(`${CALLS} Execute calls on ${CONNECTIONS} connections: cheap calls stay cheap, RESOURCE_EXHAUSTED past the queue, RSS comes back`, async () => {
    const c = server.clients;
    const pid = server.child.pid!;
    const generator = startGenerator(c.address);
    await generator.line('prepared');
    const probe = new CheapCallProbe(c.address, await digestOf(Buffer.from('no such action')));

    // Idle figures and the RSS baseline, with the code paths warmed up.
    probe.start();
    await sleep(2_000);
    const idle = probe.drain();
    const baseline = rssOf(pid);

    generator.go();
    let peak = 0;
    const until = Date.now() + LOAD_SECONDS * 1000;
    while (Date.now() < until) {
      peak = Math.max(peak, rssOf(pid));
      await sleep(250);
    }
    const loaded = probe.drain();
    await probe.stop();
    probe.close();
    const all = (JSON.parse((await generator.line('result')).slice('result '.length)) as LoadResult).outcomes;
    await sleep(3_000); // the last running sleeps end, timers fire, garbage goes
    const after = rssOf(pid);

    const exhausted = all.filter((o) => o.code === Status.RESOURCE_EXHAUSTED);
    const firstQueued = all.filter((o) => o.code !== Status.RESOURCE_EXHAUSTED && o.firstMessageMs !== undefined).map((o) => o.firstMessageMs!);
    const refusedIn = exhausted.map((o) => o.totalMs);
    const faults = all.filter((o) => ![Status.OK, Status.RESOURCE_EXHAUSTED, Status.CANCELLED].includes(o.code));
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
    process.stdout.write(
      [
        `load: ${CALLS} Execute on ${CONNECTIONS} connections, ${SLOTS} slots, queue ${QUEUE_SIZE}, ${LOAD_SECONDS} s`,
        `  accepted ${all.length - exhausted.length}, RESOURCE_EXHAUSTED ${exhausted.length}, other ${faults.length}`,
        `  idle   ${summary('GetCapabilities', idle.capabilities)}; ${summary('GetActionResult', idle.actionResult)}`,
        `  loaded ${summary('GetCapabilities', loaded.capabilities)}; ${summary('GetActionResult', loaded.actionResult)}`,
        `  ${summary('first QUEUED', firstQueued)}; ${summary('RESOURCE_EXHAUSTED answer', refusedIn)}`,
        `  RSS baseline ${mib(baseline)}, peak ${mib(peak)}, after ${mib(after)}`,
      ].join('\n') + '\n',
    );

    expect(faults.map((o) => `${Status[o.code]}: ${o.details}`).slice(0, 5)).toEqual([]);
    expect(exhausted.length).toBeGreaterThan(0);
    expect(exhausted[0]!.details).toMatch(/execution queue is full/);
    expect(loaded.capabilities.length).toBeGreaterThan(LOAD_SECONDS * CHEAP_CALLS_PER_SECOND);
    expect(quantile(loaded.capabilities, 0.99)).toBeLessThan(CHEAP_P99_MS);
    expect(quantile(loaded.actionResult, 0.99)).toBeLessThan(CHEAP_P99_MS);
    expect(quantile(firstQueued, 0.5)).toBeLessThan(FIRST_QUEUED_P50_MS);
    expect(after - baseline).toBeLessThan(RSS_SLACK_BYTES);
    expect(server.child.exitCode).toBeNull();
  });
});
