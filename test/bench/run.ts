// `npm run bench`: Kiln's throughput and per-action overhead, each next to a
// baseline measured in the same run on the same machine (a bare grpc-js server
// moving the same messages, a bare child_process.spawn). The figures are for
// reading, not pass/fail: the machine is shared and noisy, so compare ratios.
//
// Environment: KILN_BENCH_BLOB_MIB (default 256), KILN_BENCH_HEAP_MIB (default 300),
// KILN_BENCH_ACTIONS (sequential trivial actions per sample, default 300).
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { defaultConfig, GiB, MiB } from '../../engine/config';
import { Engine } from '../../engine/engine';
import { encode, longrunning, msFromTimestamp, protobuf, reapi, unpackAny } from '../../engine/proto';
import {
  addressOf,
  byteStreamRead,
  byteStreamWrite,
  median,
  nowMs,
  ReapiClients,
  startBaselineServer,
  summarize,
  throughput,
  unary,
} from './lib';

const BLOB_MIB = Number(process.env.KILN_BENCH_BLOB_MIB ?? 256);
const HEAP_MIB = Number(process.env.KILN_BENCH_HEAP_MIB ?? 300);
const SEQ_ACTIONS = Number(process.env.KILN_BENCH_ACTIONS ?? 300);
const IN_FLIGHT = 16;

interface Row {
  metric: string;
  kiln: string;
  baseline: string;
  compare: string;
  aim?: string;
}
const rows: Row[] = [];
/** Printed under the table: why a section did not run. */
const notes: string[] = [];

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

interface Digest {
  hash: string;
  sizeBytes: number;
}
function digestOf(data: Uint8Array): Digest {
  return { hash: createHash('sha256').update(data).digest('hex'), sizeBytes: data.byteLength };
}

// ------------------------------------------------------------------ ByteStream
async function benchByteStream(c: ReapiClients): Promise<void> {
  const size = BLOB_MIB * MiB;
  const data = randomBytes(size);
  const reps = 3;
  const baseline = await startBaselineServer(size, reapi.ActionResult.create({}));
  const bare = new ReapiClients(baseline.address);
  const kilnUp: number[] = [];
  const bareUp: number[] = [];
  const kilnDown: number[] = [];
  const bareDown: number[] = [];
  let lastName = '';
  try {
    for (let rep = 0; rep < reps; rep++) {
      // A different blob each time, or Kiln would end the write early (already stored).
      data.writeUInt32BE(rep, 0);
      const d = digestOf(data);
      const name = `uploads/${randomUUID()}/blobs/${d.hash}/${d.sizeBytes}`;

      let t0 = nowMs();
      const committed = await byteStreamWrite(c.bs, name, data);
      kilnUp.push(size / MiB / ((nowMs() - t0) / 1000));
      if (committed !== size) throw new Error(`Kiln committed ${committed} of ${size} bytes`);

      t0 = nowMs();
      await byteStreamWrite(bare.bs, name, data);
      bareUp.push(size / MiB / ((nowMs() - t0) / 1000));

      lastName = `blobs/${d.hash}/${d.sizeBytes}`;
      t0 = nowMs();
      const got = await byteStreamRead(c.bs, lastName);
      kilnDown.push(size / MiB / ((nowMs() - t0) / 1000));
      if (got !== size) throw new Error(`Kiln returned ${got} of ${size} bytes`);

      t0 = nowMs();
      await byteStreamRead(bare.bs, lastName);
      bareDown.push(size / MiB / ((nowMs() - t0) / 1000));
    }
  } finally {
    bare.close();
    await baseline.stop();
  }
  const best = (xs: number[]) => Math.max(...xs);
  // Context for the upload figure: every upload is hashed once, at least.
  const t0 = nowMs();
  digestOf(data);
  const sha = size / MiB / ((nowMs() - t0) / 1000);
  rows.push({ metric: `sha256 of the same ${BLOB_MIB} MiB in this process (MiB/s)`, kiln: '', baseline: fmt(sha), compare: 'upper bound for uploads' });
  rows.push({
    metric: `ByteStream upload ${BLOB_MIB} MiB (MiB/s, best of ${reps})`,
    kiln: fmt(best(kilnUp)),
    baseline: fmt(best(bareUp)),
    compare: `ratio ${fmt(best(kilnUp) / best(bareUp), 2)}`,
    aim: '≥ 0.7',
  });
  rows.push({
    metric: `ByteStream download ${BLOB_MIB} MiB (MiB/s, best of ${reps})`,
    kiln: fmt(best(kilnDown)),
    baseline: fmt(best(bareDown)),
    compare: `ratio ${fmt(best(kilnDown) / best(bareDown), 2)}`,
    aim: '≥ 0.7',
  });
}

// ------------------------------------------------------------ FindMissingBlobs
async function benchFindMissing(c: ReapiClients): Promise<void> {
  const total = 10_000;
  const blobs = Array.from({ length: total }, (_, i) => Buffer.from(`find-missing bench blob ${i} ${randomUUID()}`));
  const digests = blobs.map(digestOf);
  // Half of them present, so both answers are exercised.
  const present = blobs.slice(0, total / 2);
  for (let i = 0; i < present.length; i += 1000) {
    const requests = present.slice(i, i + 1000).map((data, j) => ({ digest: digests[i + j], data }));
    await unary(c.cas, 'batchUpdateBlobs', { requests });
  }
  const times: number[] = [];
  let missing = 0;
  for (let rep = 0; rep < 7; rep++) {
    const t0 = nowMs();
    const res = await unary<unknown, reapi.FindMissingBlobsResponse>(c.cas, 'findMissingBlobs', { blobDigests: digests });
    times.push(nowMs() - t0);
    missing = res.missingBlobDigests.length;
  }
  if (missing !== total / 2) throw new Error(`FindMissingBlobs reported ${missing} missing, want ${total / 2}`);
  rows.push({ metric: 'FindMissingBlobs, 10,000 digests (ms, median of 7)', kiln: fmt(median(times)), baseline: '', compare: '' });
}

// ------------------------------------------------------------- GetActionResult
async function benchGetActionResult(c: ReapiClients): Promise<void> {
  const stdout = Buffer.from('bench stdout\n');
  const stdoutDigest = digestOf(stdout);
  await unary(c.cas, 'batchUpdateBlobs', { requests: [{ digest: stdoutDigest, data: stdout }] });
  const actionDigest = digestOf(Buffer.from(`bench action ${randomUUID()}`));
  const result = reapi.ActionResult.create({ exitCode: 0, stdoutDigest });
  await unary(c.ac, 'updateActionResult', { actionDigest, actionResult: result });

  const baseline = await startBaselineServer(0, result);
  const bare = new ReapiClients(baseline.address);
  const calls = 5_000;
  try {
    const get = (client: ReapiClients) => () => unary(client.ac, 'getActionResult', { actionDigest });
    await throughput(500, IN_FLIGHT, get(c)); // warm-up
    await throughput(500, IN_FLIGHT, get(bare));
    const kiln = await throughput(calls, IN_FLIGHT, get(c));
    const base = await throughput(calls, IN_FLIGHT, get(bare));
    rows.push({
      metric: `GetActionResult, ${IN_FLIGHT} in flight (calls/s)`,
      kiln: fmt(kiln, 0),
      baseline: fmt(base, 0),
      compare: `ratio ${fmt(kiln / base, 2)}`,
    });
  } finally {
    bare.close();
    await baseline.stop();
  }
}

// ------------------------------------------------------------------- Execution
interface ActionSetup {
  actionDigest: Digest;
  blobs: { digest: Digest; data: Buffer }[];
}

function makeAction(inputRoot: Digest, salt: string): ActionSetup {
  const command = encode(reapi.Command, reapi.Command.create({ arguments: ['/bin/true'] }));
  const commandDigest = digestOf(command);
  const action = encode(
    reapi.Action,
    reapi.Action.create({ commandDigest, inputRootDigest: inputRoot, salt: Buffer.from(salt) }),
  );
  const actionDigest = digestOf(action);
  return { actionDigest, blobs: [{ digest: commandDigest, data: command }, { digest: actionDigest, data: action }] };
}

async function upload(c: ReapiClients, blobs: { digest: Digest; data: Buffer }[]): Promise<void> {
  let batch: typeof blobs = [];
  let bytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const res = await unary<unknown, reapi.BatchUpdateBlobsResponse>(c.cas, 'batchUpdateBlobs', { requests: batch });
    const bad = res.responses.find((r) => (r.status?.code ?? 0) !== 0);
    if (bad) throw new Error(`BatchUpdateBlobs: ${bad.status?.message}`);
    batch = [];
    bytes = 0;
  };
  for (const b of blobs) {
    if (bytes + b.data.length > 2 * MiB) await flush();
    batch.push(b);
    bytes += b.data.length + 100;
  }
  await flush();
}

async function execute(c: ReapiClients, actionDigest: Digest): Promise<reapi.ExecuteResponse> {
  const call = c.exec.execute(
    reapi.ExecuteRequest.create({ actionDigest, skipCacheLookup: true }),
  ) as grpc.ClientReadableStream<longrunning.Operation>;
  let last: longrunning.Operation | undefined;
  for await (const op of call as AsyncIterable<longrunning.Operation>) last = op;
  if (!last?.done) throw new Error('Execute stream ended before the operation was done');
  if (last.error) throw new Error(`Execute: operation error ${last.error.code} ${last.error.message}`);
  const res = unpackAny<reapi.ExecuteResponse>(reapi.ExecuteResponse, last.response as protobuf.Any | null | undefined);
  if (!res) throw new Error('Execute: the done operation carries no ExecuteResponse');
  if ((res.status?.code ?? 0) !== 0) throw new Error(`Execute: status ${res.status?.code} ${res.status?.message}`);
  if (res.result?.exitCode !== 0) throw new Error(`Execute: /bin/true exited ${res.result?.exitCode}`);
  return res;
}

function bareSpawn(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/true', [], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`/bin/true exited ${code}`))));
  });
}

const EMPTY_DIR: Digest = digestOf(Buffer.alloc(0));

/** Sequential round trips of a trivial action vs bare spawns, in this process's current state. */
async function trivialRoundTrips(c: ReapiClients, label: string): Promise<{ overheadP50: number }> {
  const setups = Array.from({ length: SEQ_ACTIONS + 20 }, () => makeAction(EMPTY_DIR, randomUUID()));
  await upload(c, setups.flatMap((s) => s.blobs));
  const kiln: number[] = [];
  for (const [i, s] of setups.entries()) {
    const t0 = nowMs();
    await execute(c, s.actionDigest);
    if (i >= 20) kiln.push(nowMs() - t0); // first 20 are warm-up
  }
  const bare: number[] = [];
  for (let i = 0; i < SEQ_ACTIONS + 20; i++) {
    const t0 = nowMs();
    await bareSpawn();
    if (i >= 20) bare.push(nowMs() - t0);
  }
  const k = summarize(kiln);
  const b = summarize(bare);
  rows.push({
    metric: `trivial action round trip${label} (ms p50 / p99, n=${k.n})`,
    kiln: `${fmt(k.p50, 2)} / ${fmt(k.p99, 2)}`,
    baseline: `${fmt(b.p50, 2)} / ${fmt(b.p99, 2)}`,
    compare: `overhead p50 ${fmt(k.p50 - b.p50, 2)} ms`,
    aim: 'p50 overhead ≤ 3 ms',
  });
  return { overheadP50: k.p50 - b.p50 };
}

async function benchActionsPerSecond(c: ReapiClients): Promise<void> {
  const total = 400;
  const setups = Array.from({ length: total }, () => makeAction(EMPTY_DIR, randomUUID()));
  await upload(c, setups.flatMap((s) => s.blobs));
  const kiln = await throughput(total, IN_FLIGHT, (i) => execute(c, setups[i].actionDigest));
  const bare = await throughput(total, IN_FLIGHT, () => bareSpawn());
  rows.push({
    metric: `trivial actions, ${IN_FLIGHT} in flight (actions/s)`,
    kiln: fmt(kiln, 0),
    baseline: fmt(bare, 0),
    compare: `ratio ${fmt(kiln / bare, 2)}`,
  });
}

async function benchStaging(c: ReapiClients, trivialP50: number): Promise<void> {
  // 40 directories × 50 files = 2,000 small files.
  const blobs: { digest: Digest; data: Buffer }[] = [];
  const dirNodes: { name: string; digest: Digest }[] = [];
  for (let d = 0; d < 40; d++) {
    const files: { name: string; digest: Digest; isExecutable: boolean }[] = [];
    for (let f = 0; f < 50; f++) {
      const data = Buffer.from(`input file ${d}/${f}\n`);
      const digest = digestOf(data);
      blobs.push({ digest, data });
      files.push({ name: `f${String(f).padStart(3, '0')}.txt`, digest, isExecutable: false });
    }
    const dir = encode(reapi.Directory, reapi.Directory.create({ files }));
    const digest = digestOf(dir);
    blobs.push({ digest, data: dir });
    dirNodes.push({ name: `d${String(d).padStart(3, '0')}`, digest });
  }
  const root = encode(reapi.Directory, reapi.Directory.create({ directories: dirNodes }));
  const rootDigest = digestOf(root);
  blobs.push({ digest: rootDigest, data: root });
  await upload(c, blobs);

  const reps = 7;
  const setups = Array.from({ length: reps }, () => makeAction(rootDigest, randomUUID()));
  await upload(c, setups.flatMap((s) => s.blobs));
  const roundTrips: number[] = [];
  const fetches: number[] = [];
  for (const s of setups) {
    const t0 = nowMs();
    const res = await execute(c, s.actionDigest);
    roundTrips.push(nowMs() - t0);
    const md = res.result?.executionMetadata;
    const start = msFromTimestamp(md?.inputFetchStartTimestamp);
    const end = msFromTimestamp(md?.inputFetchCompletedTimestamp);
    if (start !== undefined && end !== undefined && end >= start) fetches.push(end - start);
  }
  rows.push({
    metric: `stage 2,000-file input root (ms, median of ${reps})`,
    kiln: fetches.length ? `${fmt(median(fetches))} (worker's input fetch)` : 'n/a (no fetch timestamps)',
    baseline: `${fmt(trivialP50, 2)} (empty root)`,
    compare: `round trip ${fmt(median(roundTrips))} ms, +${fmt(median(roundTrips) - trivialP50)} ms`,
  });
}

/** Grows this process's live JS heap by about `mib` MiB; keep the result alive. */
function growHeap(mib: number): { ballast: unknown[]; grownMib: number } {
  const before = process.memoryUsage().heapUsed;
  const ballast: unknown[] = [];
  while (process.memoryUsage().heapUsed - before < mib * MiB) {
    const page: { id: number; name: string; next: unknown }[] = [];
    for (let i = 0; i < 10_000; i++) page.push({ id: i, name: `ballast-${ballast.length}-${i}`, next: page[i - 1] });
    ballast.push(page);
  }
  return { ballast, grownMib: (process.memoryUsage().heapUsed - before) / MiB };
}

async function executionAvailable(c: ReapiClients): Promise<string | undefined> {
  const caps = await unary<unknown, reapi.ServerCapabilities>(c.caps, 'getCapabilities', {});
  if (!caps.executionCapabilities?.execEnabled) return 'Capabilities: exec_enabled is false';
  try {
    await execute(c, (await prepareOne(c)).actionDigest);
    return undefined;
  } catch (err) {
    return `Execute failed: ${(err as grpc.ServiceError).details ?? (err as Error).message}`;
  }
}

async function prepareOne(c: ReapiClients): Promise<ActionSetup> {
  const s = makeAction(EMPTY_DIR, randomUUID());
  await upload(c, s.blobs);
  return s;
}

// ------------------------------------------------------------------------ main
function printTable(): void {
  const header: Row = { metric: 'metric', kiln: 'Kiln', baseline: 'baseline', compare: 'comparison', aim: 'aim' };
  const all = [header, ...rows];
  const w = (k: keyof Row) => Math.max(...all.map((r) => (r[k] ?? '').length));
  const widths = { metric: w('metric'), kiln: w('kiln'), baseline: w('baseline'), compare: w('compare') };
  const line = (r: Row) =>
    `${r.metric.padEnd(widths.metric)}  ${r.kiln.padStart(widths.kiln)}  ${r.baseline.padStart(widths.baseline)}  ${r.compare.padEnd(widths.compare)}  ${r.aim ?? ''}`.trimEnd();
  console.log(line(header));
  console.log('-'.repeat(line(header).length + 4));
  for (const r of rows) console.log(line(r));
  for (const n of notes) console.log(`note: ${n}`);
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'kiln-bench-'));
  const engine = await Engine.start({
    config: { ...defaultConfig(), port: 0, httpPort: 0, dataDir, cacheSizeBytes: 8 * GiB },
  });
  const c = new ReapiClients(addressOf(engine.grpcUrl));
  console.log(
    `kiln bench: node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), engine in-process at ${engine.grpcUrl}`,
  );
  try {
    const step = async (name: string, fn: () => Promise<unknown>) => {
      process.stderr.write(`… ${name}\n`);
      await fn();
    };
    await step('ByteStream', () => benchByteStream(c));
    await step('FindMissingBlobs', () => benchFindMissing(c));
    await step('GetActionResult', () => benchGetActionResult(c));

    const noExec = await executionAvailable(c);
    if (noExec) {
      notes.push(`execution benchmarks skipped: ${noExec}`);
    } else {
      let lean = { overheadP50: NaN };
      await step('trivial actions', async () => (lean = await trivialRoundTrips(c, '')));
      await step('actions/s', () => benchActionsPerSecond(c));
      await step('input staging', () => benchStaging(c, summarizeP50(rows)));
      await step(`heap +${HEAP_MIB} MiB`, async () => {
        const { ballast, grownMib } = growHeap(HEAP_MIB);
        const fat = await trivialRoundTrips(c, ` after heap +${fmt(grownMib, 0)} MiB`);
        rows.push({
          metric: 'overhead change with the fatter heap (ms, p50)',
          kiln: fmt(fat.overheadP50 - lean.overheadP50, 2),
          baseline: '',
          compare: `rss ${fmt(process.memoryUsage().rss / MiB, 0)} MiB`,
          aim: '≈ 0 (flat)',
        });
        if (ballast.length === 0) throw new Error('unreachable: keeps the ballast alive until here');
      });
    }
  } finally {
    c.close();
    await engine.stop({ drainMs: 2_000 });
    await rm(dataDir, { recursive: true, force: true });
  }
  printTable();
}

/** The Kiln p50 of the first trivial-action row, for the staging comparison. */
function summarizeP50(all: Row[]): number {
  const row = all.find((r) => r.metric.startsWith('trivial action round trip'));
  return row ? Number(row.kiln.split(' / ')[0]) : NaN;
}

main().catch((err) => {
  console.error(`kiln bench: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
