// Server CPU per cache-path call, for profiling GetActionResult, FindMissingBlobs
// and ByteStream: starts `kiln serve` from dist/ (or KILN_BENCH_DIST, to
// alternate with an older build; optionally under --cpu-prof), drives one kind
// of call from this process, and prints the CPU `kiln serve` spent (its own
// /proc times) per call or per MiB, beside the wall time. CPU rather than wall
// time, so a change can be judged on a shared machine.
//   tsx test/bench/cachepath.ts [--kind gar|fmb|up|down] [--n N] [--rounds 3] [--cpu-prof DIR]
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { reapi } from '../../engine/proto';
import { digestOf, execute, trivialAction, upload } from './actions';
import { byteStreamRead, byteStreamWrite, median, nowMs, ReapiClients, unary } from './lib';
import { ownCpuMs, startKiln } from './processes';

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

async function main(): Promise<void> {
  const kind = arg('--kind', 'gar');
  const rounds = Number(arg('--rounds', '3'));
  const defaults: Record<string, number> = { gar: 2000, fmb: 30, up: 64, down: 64 };
  const n = Number(arg('--n', String(defaults[kind] ?? 100)));
  const prof = process.argv.includes('--cpu-prof') ? arg('--cpu-prof', '') : undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-cachepath-'));
  const kiln = await startKiln(dataDir, [], prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []);
  const c = new ReapiClients(kiln.address);
  try {
    const round =
      kind === 'gar' ? await getActionResult(c, n)
      : kind === 'fmb' ? await findMissing(c, n)
      : kind === 'up' || kind === 'down' ? await byteStream(c, n, kind)
      : undefined;
    if (!round) throw new Error(`--kind ${kind}: one of gar, fmb, up, down`);
    await round(); // warm-up: JIT, channels, caches
    const unit = kind === 'up' || kind === 'down' ? 'MiB' : 'call';
    for (let r = 0; r < rounds; r++) {
      const cpu0 = ownCpuMs(kiln.pid);
      const { units, wall } = await round();
      const cpu = (ownCpuMs(kiln.pid) - cpu0) / units;
      const w = median(wall);
      const wallText = unit === 'MiB' ? `${(1000 / w).toFixed(0)} MiB/s` : `p50 ${w.toFixed(3)} ms`;
      console.log(`${kind} round ${r + 1}: server CPU ${(cpu * (unit === 'call' && kind === 'gar' ? 1000 : 1)).toFixed(kind === 'gar' ? 0 : 2)} ${kind === 'gar' ? 'µs' : 'ms'}/${unit}, ${wallText} (load ${loadavg()[0].toFixed(2)})`);
    }
  } finally {
    c.close();
    await kiln.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
