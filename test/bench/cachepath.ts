// Server CPU per cache-path call, for profiling GetActionResult, FindMissingBlobs
// and ByteStream: starts `kiln serve` from dist/ (or KILN_BENCH_DIST, to
// alternate with an older build; optionally under --cpu-prof), drives one kind
// of call from this process, and prints the CPU `kiln serve` spent (its own
// /proc times) per call or per MiB, beside the wall time. CPU rather than wall
// time, so a change can be judged on a shared machine.
//   tsx test/bench/cachepath.ts [--kind gar|fmb|up|down] [--n N] [--rounds 3] [--bare] [--cpu-prof DIR] [--after-actions N] [--node-arg FLAG]…
// --bare: the same calls against the bare grpc-js server too (not fmb), alternating.
// --after-actions N: N trivial actions first (16 in flight), as the full bench's earlier
// sections run before its cache-path rows; a serve that has run actions is not a fresh one.
// --node-arg FLAG: a flag for serve's Node (repeatable), to compare V8 settings; with
// --node-arg --trace-gc each round also prints serve's full collections (mark-compacts).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { reapi } from '../../engine/proto';
import { digestOf, execute, roundTrip, trivialAction, upload } from './actions';
import { byteStreamRead, byteStreamWrite, median, nowMs, ReapiClients, throughput, unary } from './lib';
import { rssMiB, startBare, startKiln, type Server } from './processes';

/** utime and stime of a process, in ms. */
function userSysMs(pid: number): [number, number] {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const tick = 1000 / 100;
  return [Number(f[11]) * tick, Number(f[12]) * tick];
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

type Round = () => Promise<{ units: number; wall: number[] }>;

/** GetActionResult of a result shaped like Bazel's hits (three outputs, stdout), `n` sequential calls. */
async function getActionResult(c: ReapiClients, n: number): Promise<Round> {
  const { actionDigest, blobs } = trivialAction();
  await upload(c, blobs);
  const executed = await execute(c, actionDigest);
  const outputs = Array.from({ length: 3 }, (_, i) => {
    const data = Buffer.from(`bench output ${i} ${randomUUID()}\n`);
    return { path: `bazel-out/k8-fastbuild/bin/out_${i}.txt`, digest: digestOf(data), data };
  });
  await upload(c, outputs.map((o) => ({ digest: o.digest, data: o.data })));
  const actionResult = reapi.ActionResult.create({
    ...executed.result,
    outputFiles: outputs.map((o) => ({ path: o.path, digest: o.digest, isExecutable: false })),
  });
  const key = digestOf(Buffer.from(`bench ac key ${randomUUID()}`));
  await unary(c.ac, 'updateActionResult', { actionDigest: key, actionResult });
  return getActionResultRound(c, key, n);
}

/** `n` sequential GetActionResult calls for `key`, each timed. */
function getActionResultRound(c: ReapiClients, key: reapi.IDigest, n: number): Round {
  return async () => {
    const wall: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = nowMs();
      await unary(c.ac, 'getActionResult', { actionDigest: key });
      wall.push(nowMs() - t0);
    }
    return { units: n, wall };
  };
}

/** FindMissingBlobs of 10,000 digests, half present, `n` calls. */
async function findMissing(c: ReapiClients, n: number): Promise<Round> {
  const blobs = Array.from({ length: 10_000 }, (_, i) => Buffer.from(`find-missing bench blob ${i} ${randomUUID()}`));
  const digests = blobs.map(digestOf);
  await upload(c, blobs.slice(0, 5_000).map((data, i) => ({ digest: digests[i]!, data })));
  return async () => {
    const wall: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = nowMs();
      const res = await unary<unknown, reapi.FindMissingBlobsResponse>(c.cas, 'findMissingBlobs', { blobDigests: digests });
      wall.push(nowMs() - t0);
      if (res.missingBlobDigests.length !== 5_000) throw new Error(`${res.missingBlobDigests.length} missing, want 5000`);
    }
    return { units: n, wall };
  };
}

/** `n` MiB up (a fresh blob each round) or down (one stored blob), MiB as the unit. */
async function byteStream(c: ReapiClients, n: number, dir: 'up' | 'down'): Promise<Round> {
  const data = randomBytes(n * 1024 * 1024);
  const fresh = () => {
    data.write(randomUUID(), 0);
    return digestOf(data);
  };
  const stored = fresh();
  if (dir === 'down') await byteStreamWrite(c.bs, `uploads/${randomUUID()}/blobs/${stored.hash}/${stored.sizeBytes}`, data);
  return async () => {
    const t0 = nowMs();
    if (dir === 'up') {
      const d = fresh();
      await byteStreamWrite(c.bs, `uploads/${randomUUID()}/blobs/${d.hash}/${d.sizeBytes}`, data);
    } else {
      const got = await byteStreamRead(c.bs, `blobs/${stored.hash}/${stored.sizeBytes}`);
      if (got !== data.length) throw new Error(`read ${got} of ${data.length} bytes`);
    }
    return { units: n, wall: [(nowMs() - t0) / n] };
  };
}

/** The same calls against the bare grpc-js server (bare-server.ts), which stores nothing. */
async function bareRound(c: ReapiClients, kind: string, n: number): Promise<Round | undefined> {
  if (kind === 'gar') {
    const result = reapi.ActionResult.create({
      exitCode: 0,
      outputFiles: Array.from({ length: 3 }, (_, i) => ({ path: `bazel-out/k8-fastbuild/bin/out_${i}.txt`, digest: digestOf(Buffer.from(`o${i}`)) })),
    });
    const key = digestOf(Buffer.from('bare key'));
    await unary(c.ac, 'updateActionResult', { actionDigest: key, actionResult: result });
    return getActionResultRound(c, key, n);
  }
  if (kind === 'up' || kind === 'down') {
    const data = randomBytes(n * 1024 * 1024);
    const d = digestOf(data);
    return async () => {
      const t0 = nowMs();
      if (kind === 'up') await byteStreamWrite(c.bs, `uploads/${randomUUID()}/blobs/${d.hash}/${d.sizeBytes}`, data);
      else await byteStreamRead(c.bs, `blobs/${d.hash}/${d.sizeBytes}`);
      return { units: n, wall: [(nowMs() - t0) / n] };
    };
  }
  return undefined;
}

async function main(): Promise<void> {
  const kind = arg('--kind', 'gar');
  const rounds = Number(arg('--rounds', '3'));
  const defaults: Record<string, number> = { gar: 2000, fmb: 30, up: 64, down: 64 };
  const n = Number(arg('--n', String(defaults[kind] ?? 100)));
  const prof = process.argv.includes('--cpu-prof') ? arg('--cpu-prof', '') : undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-cachepath-'));
  const nodeArgs = process.argv.flatMap((a, i) => (a === '--node-arg' ? [process.argv[i + 1]!] : []));
  const kiln = await startKiln(dataDir, [], [...nodeArgs, ...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : [])]);
  const bare: Server | undefined = process.argv.includes('--bare') ? await startBare() : undefined;
  const c = new ReapiClients(kiln.address);
  const bc = bare && new ReapiClients(bare.address);
  console.log(`kiln serve pid ${kiln.pid}${bare ? `, bare grpc-js server pid ${bare.pid}` : ''}`);
  try {
    const afterActions = Number(arg('--after-actions', '0'));
    if (afterActions > 0) {
      await throughput(afterActions, 16, () => roundTrip(c));
      console.log(`after ${afterActions} actions: kiln serve RSS ${rssMiB(kiln.pid).toFixed(0)} MiB`);
    }
    const bareRun = bc && (await bareRound(bc, kind, n));
    await bareRun?.();
    const round =
      kind === 'gar' ? await getActionResult(c, n)
      : kind === 'fmb' ? await findMissing(c, n)
      : kind === 'up' || kind === 'down' ? await byteStream(c, n, kind)
      : undefined;
    if (!round) throw new Error(`--kind ${kind}: one of gar, fmb, up, down`);
    await round(); // warm-up: JIT, channels, caches
    const unit = kind === 'up' || kind === 'down' ? 'MiB' : 'call';
    // --trace-gc prints on serve's stdout, which startKiln keeps reading into `startup`.
    const markCompacts = () => (kiln.startup ?? []).filter((l) => l.includes('Mark-Compact')).length;
    const measure = async (who: string, pid: number, run: Round) => {
      const [u0, s0] = userSysMs(pid);
      const mc0 = markCompacts();
      const { units, wall } = await run();
      const [u1, s1] = userSysMs(pid);
      const gcText = pid === kiln.pid && nodeArgs.includes('--trace-gc') ? `, ${markCompacts() - mc0} mark-compacts` : '';
      const cpu = (u1 - u0 + s1 - s0) / units;
      const userShare = Math.round((100 * (u1 - u0)) / Math.max(1, u1 - u0 + s1 - s0));
      const w = median(wall);
      const wallText = unit === 'MiB' ? `${(1000 / w).toFixed(0)} MiB/s` : `p50 ${w.toFixed(3)} ms`;
      const cpuText = kind === 'gar' ? `${(cpu * 1000).toFixed(0)} µs` : `${cpu.toFixed(2)} ms`;
      console.log(`${kind} ${who}: server CPU ${cpuText}/${unit} (${userShare}% user), ${wallText}${gcText} (load ${loadavg()[0].toFixed(2)})`);
    };
    // Alternating, so both see the same load.
    for (let r = 0; r < rounds; r++) {
      await measure(`kiln round ${r + 1}`, kiln.pid, round);
      if (bare && bareRun) await measure(`bare round ${r + 1}`, bare.pid, bareRun);
    }
  } finally {
    c.close();
    bc?.close();
    await bare?.stop();
    await kiln.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
