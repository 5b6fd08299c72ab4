// What a bench client process measures. Each job runs in a small Node process
// of its own (client.ts), talks to servers in other processes, and returns
// plain numbers (milliseconds, MiB/s, calls/s) for the parent to summarize.
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { MiB } from '../../engine/config';
import { reapi } from '../../engine/proto';
import { digestOf, execute, roundTrip, trivialAction, upload, type RoundTrip } from './actions';
import { compress } from 'zstd-napi';
import { byteStreamRead, byteStreamWrite, nowMs, ReapiClients, throughput, unary } from './lib';

export type Job =
  | { kind: 'spawn'; count: number; warmup: number }
  | { kind: 'spawnRate'; total: number; inFlight: number }
  | { kind: 'roundTrips'; address: string; count: number; warmup: number }
  | { kind: 'actionRate'; address: string; total: number; inFlight: number; warmup: number }
  | { kind: 'byteStream'; kiln: string; bare: string; mib: number; reps: number }
  | { kind: 'compressed'; kiln: string; mib: number; reps: number }
  | { kind: 'unary'; kiln: string; bare: string; calls: number; rounds: number }
  | { kind: 'findMissing'; address: string; total: number; reps: number };

export interface JobResults {
  spawn: number[];
  spawnRate: number;
  roundTrips: RoundTrip[];
  actionRate: number;
  byteStream: { kilnUp: number[]; bareUp: number[]; kilnDown: number[]; bareDown: number[] };
  /** MiB/s of uncompressed content moved, zstd and plain, and the sizes on the wire. */
  compressed: { zstdUp: number[]; plainUp: number[]; zstdDown: number[]; plainDown: number[]; size: number; uploadWire: number; downloadWire: number };
  unary: { kilnGet: number[]; bareGet: number[]; kilnCachedExecute: number[] };
  findMissing: number[];
}

export type ResultOf<J extends Job> = JobResults[J['kind']];

function bareSpawn(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/true', [], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`/bin/true exited ${code}`))));
  });
}

async function timeSpawns(count: number, warmup: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < warmup + count; i++) {
    const t0 = nowMs();
    await bareSpawn();
    if (i >= warmup) times.push(nowMs() - t0);
  }
  return times;
}

async function withClients<T>(address: string, fn: (c: ReapiClients) => Promise<T>): Promise<T> {
  const c = new ReapiClients(address);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

async function timeRoundTrips(address: string, count: number, warmup: number): Promise<RoundTrip[]> {
  return withClients(address, async (c) => {
    const out: RoundTrip[] = [];
    for (let i = 0; i < warmup + count; i++) {
      const rt = await roundTrip(c);
      if (i >= warmup) out.push(rt);
    }
    return out;
  });
}

async function actionRate(address: string, total: number, inFlight: number, warmup: number): Promise<number> {
  return withClients(address, async (c) => {
    if (warmup > 0) await throughput(warmup, inFlight, () => roundTrip(c));
    return throughput(total, inFlight, () => roundTrip(c));
  });
}

/** Uploads and downloads a blob of `mib` MiB to Kiln and to the bare server, alternating, in MiB/s. */
async function byteStream(kilnAddress: string, bareAddress: string, mib: number, reps: number): Promise<JobResults['byteStream']> {
  const size = mib * MiB;
  const data = randomBytes(size);
  const kiln = new ReapiClients(kilnAddress);
  const bare = new ReapiClients(bareAddress);
  const out: JobResults['byteStream'] = { kilnUp: [], bareUp: [], kilnDown: [], bareDown: [] };
  const rate = (t0: number) => mib / ((nowMs() - t0) / 1000);
  try {
    // One untimed round first: channels connected, code paths warm.
    for (let rep = -1; rep < reps; rep++) {
      // A different blob each time, or Kiln would end the write early (already stored).
      data.writeInt32BE(rep, 0);
      data.write(randomUUID(), 4);
      const d = digestOf(data);
      const uploadName = `uploads/${randomUUID()}/blobs/${d.hash}/${d.sizeBytes}`;
      const readName = `blobs/${d.hash}/${d.sizeBytes}`;

      let t0 = nowMs();
      const committed = await byteStreamWrite(kiln.bs, uploadName, data);
      if (rep >= 0) out.kilnUp.push(rate(t0));
      if (committed !== size) throw new Error(`Kiln committed ${committed} of ${size} bytes`);

      t0 = nowMs();
      await byteStreamWrite(bare.bs, uploadName, data);
      if (rep >= 0) out.bareUp.push(rate(t0));

      t0 = nowMs();
      const got = await byteStreamRead(kiln.bs, readName);
      if (rep >= 0) out.kilnDown.push(rate(t0));
      if (got !== size) throw new Error(`Kiln returned ${got} of ${size} bytes`);

      t0 = nowMs();
      await byteStreamRead(bare.bs, readName);
      if (rep >= 0) out.bareDown.push(rate(t0));
    }
  } finally {
    kiln.close();
    bare.close();
  }
  return out;
}

/**
 * Sequential unary latencies, alternating rounds: Kiln's GetActionResult, the
 * bare server's GetActionResult (same result message), and an Execute that
 * Kiln answers from its action cache.
 */
async function unaryLatencies(kilnAddress: string, bareAddress: string, calls: number, rounds: number): Promise<JobResults['unary']> {
  const kiln = new ReapiClients(kilnAddress);
  const bare = new ReapiClients(bareAddress);
  try {
    // A result with the shape Bazel's cache hits have: outputs, stdout, metadata.
    const { actionDigest, blobs } = trivialAction();
    await upload(kiln, blobs);
    const executed = await execute(kiln, actionDigest); // cached by Kiln from here on
    const outputs = Array.from({ length: 3 }, (_, i) => {
      const data = Buffer.from(`bench output ${i} ${randomUUID()}\n`);
      return { path: `bazel-out/k8-fastbuild/bin/out_${i}.txt`, digest: digestOf(data), data };
    });
    await upload(kiln, outputs.map((o) => ({ digest: o.digest, data: o.data })));
    const result = reapi.ActionResult.create({
      ...executed.result,
      outputFiles: outputs.map((o) => ({ path: o.path, digest: o.digest, isExecutable: false })),
    });
    const cacheKey = digestOf(Buffer.from(`bench ac key ${randomUUID()}`));
    await unary(kiln.ac, 'updateActionResult', { actionDigest: cacheKey, actionResult: result });
    await unary(bare.ac, 'updateActionResult', { actionDigest: cacheKey, actionResult: result });

    const out: JobResults['unary'] = { kilnGet: [], bareGet: [], kilnCachedExecute: [] };
    const time = async (samples: number[] | undefined, fn: () => Promise<unknown>) => {
      for (let i = 0; i < calls; i++) {
        const t0 = nowMs();
        await fn();
        samples?.push(nowMs() - t0);
      }
    };
    const get = (c: ReapiClients) => () => unary(c.ac, 'getActionResult', { actionDigest: cacheKey });
    const cachedExecute = () =>
      execute(kiln, actionDigest, false).then((r) => {
        if (!r.cachedResult) throw new Error('Execute of a cached action was not answered from the cache');
      });
    // Warm-up round, untimed.
    await time(undefined, get(kiln));
    await time(undefined, get(bare));
    await time(undefined, cachedExecute);
    for (let r = 0; r < rounds; r++) {
      await time(out.kilnGet, get(kiln));
      await time(out.bareGet, get(bare));
      await time(out.kilnCachedExecute, cachedExecute);
    }
    return out;
  } finally {
    kiln.close();
    bare.close();
  }
}

/** Untimed FindMissingBlobs calls before the timed ones. */
const FMB_WARMUP = 20;

/** FindMissingBlobs for `total` digests, half of them present (ms per call). */
async function findMissing(address: string, total: number, reps: number): Promise<number[]> {
  return withClients(address, async (c) => {
    const blobs = Array.from({ length: total }, (_, i) => Buffer.from(`find-missing bench blob ${i} ${randomUUID()}`));
    const digests = blobs.map(digestOf);
    await upload(c, blobs.slice(0, total / 2).map((data, i) => ({ digest: digests[i], data })));
    const times: number[] = [];
    // Untimed calls first, as the other rows warm up: a single one left the timed calls
    // in V8's tier-up (the first ~15 calls took 40–110 ms against 15–25 after).
    for (let rep = -FMB_WARMUP; rep < reps; rep++) {
      const t0 = nowMs();
      const res = await unary<unknown, reapi.FindMissingBlobsResponse>(c.cas, 'findMissingBlobs', { blobDigests: digests });
      if (rep >= 0) times.push(nowMs() - t0);
      const want = total - total / 2;
      if (res.missingBlobDigests.length !== want) {
        throw new Error(`FindMissingBlobs reported ${res.missingBlobDigests.length} missing, want ${want}`);
      }
    }
    return times;
  });
}

/** Build-log-like text (paths, line numbers, warnings): what compressed transfers are for. */
function textBlob(size: number, salt: string): Buffer {
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const line = `${salt} src/pkg_${(i * 7) % 173}/file_${(i * 31) % 409}.cc:${i % 2000}:${i % 80}: warning: unused variable 'v_${(i * 13) % 997}' [-Wunused-variable] (${i})\n`;
    parts.push(line);
    length += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
}

/**
 * The same text blob moved zstd-compressed and plain, alternating: MiB/s of content
 * (not of wire bytes), plus the sizes on the wire. The client compresses before the
 * clock starts (level 3, as Bazel's zstd-jni default); Kiln compresses downloads itself.
 */
async function compressedTransfers(kilnAddress: string, mib: number, reps: number): Promise<JobResults['compressed']> {
  const kiln = new ReapiClients(kilnAddress);
  const size = mib * MiB;
  const out: JobResults['compressed'] = { zstdUp: [], plainUp: [], zstdDown: [], plainDown: [], size, uploadWire: 0, downloadWire: 0 };
  const rate = (t0: number) => mib / ((nowMs() - t0) / 1000);
  try {
    for (let rep = -1; rep < reps; rep++) {
      for (const mode of ['zstd', 'plain'] as const) {
        const data = textBlob(size, randomUUID()); // a new blob each time: no early "already stored"
        const d = digestOf(data);
        const wire = mode === 'zstd' ? compress(data, { compressionLevel: 3 }) : data;
        const kind = mode === 'zstd' ? 'compressed-blobs/zstd' : 'blobs';
        let t0 = nowMs();
        await byteStreamWrite(kiln.bs, `uploads/${randomUUID()}/${kind}/${d.hash}/${d.sizeBytes}`, wire);
        if (rep >= 0) (mode === 'zstd' ? out.zstdUp : out.plainUp).push(rate(t0));
        t0 = nowMs();
        const got = await byteStreamRead(kiln.bs, `${kind}/${d.hash}/${d.sizeBytes}`);
        if (rep >= 0) (mode === 'zstd' ? out.zstdDown : out.plainDown).push(rate(t0));
        if (mode === 'zstd') [out.uploadWire, out.downloadWire] = [wire.length, got];
        else if (got !== size) throw new Error(`Kiln returned ${got} of ${size} bytes`);
      }
    }
    return out;
  } finally {
    kiln.close();
  }
}

export async function runJob(job: Job): Promise<unknown> {
  switch (job.kind) {
    case 'spawn':
      return timeSpawns(job.count, job.warmup);
    case 'spawnRate':
      return throughput(job.total, job.inFlight, () => bareSpawn());
    case 'roundTrips':
      return timeRoundTrips(job.address, job.count, job.warmup);
    case 'actionRate':
      return actionRate(job.address, job.total, job.inFlight, job.warmup);
    case 'byteStream':
      return byteStream(job.kiln, job.bare, job.mib, job.reps);
    case 'compressed':
      return compressedTransfers(job.kiln, job.mib, job.reps);
    case 'unary':
      return unaryLatencies(job.kiln, job.bare, job.calls, job.rounds);
    case 'findMissing':
      return findMissing(job.address, job.total, job.reps);
  }
}
