// `npm run bench -- --soak [--soak-minutes N]` (10 minutes by default; not in CI):
// a steady mixed load against `kiln serve` in its own process, printing a line per
// interval with the server's RSS and CPU and the latency of cheap calls
// (GetCapabilities, GetActionResult) and of an uncached Execute round trip, so a
// leak or a slowdown over time shows as a trend. The load, all from this process:
// EXEC_WORKERS loops of FindMissing + BatchUpdate + Execute of /bin/true, CAS_WORKERS
// loops of a 256 KiB ByteStream write and read back, and one prober of cheap calls.
import { randomBytes } from 'node:crypto';
import { roundTrip, digestOf } from './actions';
import { ReapiClients, byteStreamRead, byteStreamWrite, summarize, unary } from './lib';
import { cpuBetween, rssMiB, serverCpu, type Server } from './processes';

const EXEC_WORKERS = 4;
const CAS_WORKERS = 2;
const CAS_BLOB_BYTES = 256 * 1024;
const PROBE_EVERY_MS = 50;

export interface SoakOptions {
  minutes: number;
  /** Seconds between report lines (default: a tenth of the run, between 10 s and 60 s). */
  intervalSeconds?: number;
}

interface Window {
  caps: number[];
  ac: number[];
  exec: number[];
  casBytes: number;
  errors: string[];
}

const newWindow = (): Window => ({ caps: [], ac: [], exec: [], casBytes: 0, errors: [] });

/** Runs the soak against `kiln`; resolves when the time is up and every loop has stopped. */
export async function soak(kiln: Server, opts: SoakOptions): Promise<void> {
  const totalMs = opts.minutes * 60_000;
  const intervalMs = (opts.intervalSeconds ?? Math.min(60, Math.max(10, (opts.minutes * 60) / 10))) * 1000;
  const c = new ReapiClients(kiln.address);
  let window = newWindow();
  let running = true;
  const fail = (what: string) => (err: unknown) => {
    window.errors.push(`${what}: ${(err as Error).message}`);
  };
  const timed = async (into: () => number[], call: () => Promise<unknown>, what: string) => {
    const t0 = performance.now();
    await call().catch((err: { code?: number }) => {
      if (err.code !== 5) throw err; // NOT_FOUND is GetActionResult's answer for a miss
    }).catch(fail(what));
    into().push(performance.now() - t0);
  };

  const missAction = digestOf(Buffer.from('kiln soak: no such action'));
  const loops = [
    ...Array.from({ length: EXEC_WORKERS }, async () => {
      while (running) {
        const t0 = performance.now();
        try {
          await roundTrip(c);
          window.exec.push(performance.now() - t0);
        } catch (err) {
          fail('execute')(err);
        }
      }
    }),
    ...Array.from({ length: CAS_WORKERS }, async () => {
      while (running) {
        const data = randomBytes(CAS_BLOB_BYTES);
        const d = digestOf(data);
        try {
          await byteStreamWrite(c.bs, `uploads/${randomBytes(8).toString('hex')}/blobs/${d.hash}/${d.sizeBytes}`, data);
          window.casBytes += data.length + (await byteStreamRead(c.bs, `blobs/${d.hash}/${d.sizeBytes}`));
        } catch (err) {
          fail('bytestream')(err);
        }
      }
    }),
    (async () => {
      while (running) {
        await timed(() => window.caps, () => unary(c.caps, 'getCapabilities', {}), 'GetCapabilities');
        await timed(() => window.ac, () => unary(c.ac, 'getActionResult', { actionDigest: missAction }), 'GetActionResult');
        await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
      }
    })(),
  ];

  const fmt = (xs: number[]) => {
    const s = summarize(xs);
    return s.n ? `${s.p50.toFixed(1)}/${s.p99.toFixed(1)}` : '-';
  };
  console.log(`kiln bench soak: ${opts.minutes} min against kiln serve pid ${kiln.pid}, a line every ${intervalMs / 1000} s`);
  console.log(`load: ${EXEC_WORKERS} Execute round-trip loops (/bin/true, uncached), ${CAS_WORKERS} ByteStream write+read loops (${CAS_BLOB_BYTES / 1024} KiB), cheap calls every ${PROBE_EVERY_MS} ms`);
  console.log('  time   RSS MiB  CPU %   Capabilities p50/p99 ms  GetActionResult p50/p99 ms  Execute round trip p50/p99 ms  executes/s  CAS MiB/s  errors');
  const t0 = performance.now();
  const rss: number[] = [];
  let cpuBefore = serverCpu(kiln.pid);
  let last = t0;
  while (performance.now() - t0 < totalMs) {
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, totalMs - (performance.now() - t0))));
    const now = performance.now();
    const w = window;
    window = newWindow();
    const cpuAfter = serverCpu(kiln.pid);
    const seconds = (now - last) / 1000;
    const mib = rssMiB(kiln.pid);
    rss.push(mib);
    console.log(
      [
        `${((now - t0) / 1000).toFixed(0).padStart(5)}s`,
        mib.toFixed(0).padStart(8),
        ((cpuBetween(cpuBefore, cpuAfter) / (now - last)) * 100).toFixed(0).padStart(6),
        fmt(w.caps).padStart(24),
        fmt(w.ac).padStart(27),
        fmt(w.exec).padStart(30),
        (w.exec.length / seconds).toFixed(1).padStart(11),
        (w.casBytes / 2 ** 20 / seconds).toFixed(1).padStart(10),
        `  ${w.errors.length}${w.errors[0] ? ` (${w.errors[0].slice(0, 80)})` : ''}`,
      ].join(' '),
    );
    cpuBefore = cpuAfter;
    last = now;
  }
  running = false;
  await Promise.all(loops);
  c.close();
  if (rss.length > 0) {
    console.log(`RSS: first interval ${rss[0]!.toFixed(0)} MiB, last ${rss.at(-1)!.toFixed(0)} MiB, max ${Math.max(...rss).toFixed(0)} MiB`);
  }
}
