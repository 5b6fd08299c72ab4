// Where one uncached trivial action's time goes, as the server reports it:
// `kiln serve` from dist/ in a process of its own, this client in another,
// N sequential /bin/true actions. For each, the client's round trip and the
// stages of the result's ExecutedActionMetadata (queued → worker start →
// inputs → execution → outputs → worker done), then medians and p25–p75 of
// each, and the server's CPU per action by process (engine, slots' agents).
// A diagnosis tool, not a bench row: run it to see what to work on next.
//
//   npx tsx test/bench/stages.ts [--n 200] [--warm 30] [--pid PID --address HOST:PORT] [-- kiln serve flags…]
// With --pid and --address it measures a kiln serve already running (under strace, say).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { reapi } from '../../engine/proto';
import { execute, trivialAction, upload } from './actions';
import { ReapiClients, nowMs, quantile, unary } from './lib';
import { kilnPids, ownCpuMs, serverCpuWhenQuiet, startKiln } from './processes';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const N = flag('--n', 200);
const WARM = flag('--warm', 30);
const serveFlags = args.includes('--') ? args.slice(args.indexOf('--') + 1) : [];

type Stamp = { seconds?: number | Long | null; nanos?: number | null } | null | undefined;
type Long = { toNumber(): number };
const ms = (t: Stamp) => (t ? Number(typeof t.seconds === 'object' && t.seconds ? t.seconds.toNumber() : t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN);

const STAGES = [
  ['queued → worker start', 'queuedTimestamp', 'workerStartTimestamp'],
  ['worker start → input fetch', 'workerStartTimestamp', 'inputFetchStartTimestamp'],
  ['input fetch', 'inputFetchStartTimestamp', 'inputFetchCompletedTimestamp'],
  ['input fetched → execution start', 'inputFetchCompletedTimestamp', 'executionStartTimestamp'],
  ['execution', 'executionStartTimestamp', 'executionCompletedTimestamp'],
  ['execution done → output upload', 'executionCompletedTimestamp', 'outputUploadStartTimestamp'],
  ['output upload', 'outputUploadStartTimestamp', 'outputUploadCompletedTimestamp'],
  ['output uploaded → worker done', 'outputUploadCompletedTimestamp', 'workerCompletedTimestamp'],
  ['queued → worker done (server)', 'queuedTimestamp', 'workerCompletedTimestamp'],
] as const;

function roleOf(pid: number, engine: number): string {
  if (pid === engine) return 'engine';
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (comm === 'bwrap') return 'bwrap (slot)';
    if (comm === 'kiln-spawn') return 'kiln-spawn (slot)';
    if (cmd.includes('launcher')) return readFileSync(`/proc/${pid}/environ`, 'utf8').includes('KILN_LAUNCHER_SLOT=1') ? 'slot agents' : 'launcher';
    return comm;
  } catch {
    return 'gone';
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-stages-'));
  const given = args.includes('--address') ? { pid: flag('--pid', 0), address: args[args.indexOf('--address') + 1], stop: async () => {} } : undefined;
  const server = given ?? (await startKiln(join(dir, 'data'), serveFlags));
  const c = new ReapiClients(server.address);
  try {
    const one = async () => {
      const { actionDigest, blobs } = trivialAction();
      const t0 = nowMs();
      const found = await unary<unknown, reapi.FindMissingBlobsResponse>(c.cas, 'findMissingBlobs', { blobDigests: blobs.map((b) => b.digest) });
      const missing = new Set(found.missingBlobDigests.map((d) => d.hash));
      await upload(c, blobs.filter((b) => missing.has(b.digest.hash)));
      const t1 = nowMs();
      const res = await execute(c, actionDigest);
      const t2 = nowMs();
      return { res, upload: t1 - t0, execute: t2 - t1, total: t2 - t0 };
    };
    for (let i = 0; i < WARM; i++) await one();
    const before = new Map(kilnPids(server.pid).map((p) => [p, ownCpuMs(p)]));
    const rows: Record<string, number[]> = {};
    const add = (k: string, v: number) => (rows[k] ??= []).push(v);
    for (let i = 0; i < N; i++) {
      const r = await one();
      add('client: FindMissing + upload', r.upload);
      add('client: Execute', r.execute);
      add('client: round trip', r.total);
      const m = r.res.result?.executionMetadata as Record<string, Stamp> | undefined;
      for (const [name, from, to] of STAGES) add(name, ms(m?.[to]) - ms(m?.[from]));
    }
    await serverCpuWhenQuiet(server.pid); // exec roots removed after a quiet moment are these actions' cost too
    const cpu = new Map<string, number>();
    for (const p of kilnPids(server.pid)) {
      const role = roleOf(p, server.pid);
      cpu.set(role, (cpu.get(role) ?? 0) + ownCpuMs(p) - (before.get(p) ?? 0));
    }
    const fmt = (v: number) => v.toFixed(2).padStart(7);
    console.log(`${N} sequential /bin/true actions (after ${WARM} to warm up); ms, median [p25–p75]`);
    for (const [k, vs] of Object.entries(rows)) {
      const s = vs.filter(Number.isFinite).sort((a, b) => a - b);
      console.log(`${k.padEnd(36)} ${fmt(quantile(s, 0.5))}  [${quantile(s, 0.25).toFixed(2)}–${quantile(s, 0.75).toFixed(2)}]`);
    }
    console.log('server CPU per action, by process (ms):');
    for (const [role, total] of cpu) console.log(`  ${role.padEnd(34)} ${fmt(total / N)}`);
  } finally {
    c.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
