// kill -9 of `kiln serve` at random moments during uploads, batch writes and
// executions, then a restart on the same folder: every acknowledged blob and
// action-cache entry must be there and intact, no stored file may be corrupt or
// half-written, and no action's process may outlive the engine.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { digestOf, toWireDigest, type BlobDigest } from '../../engine/digest';
import { reapi } from '../../engine/proto';
import { uploadResourceName } from '../../engine/reapi/resource-names';
import { entryPath, scanEntries } from '../../engine/store/cas-layout';
import { parseDigestKey } from '../../engine/store/cas-layout';
import { Status, type KilnClients } from '../helpers';
import { processesMatching, rounds, sleep, startServer, type ServerProcess } from './server';

const ROUNDS = rounds(30);
const KiB = 1024;
/** In the command line of every process an action leaves behind, so survivors can be found. */
const SURVIVOR_MARK = `3000.${process.pid}`;

interface Acked {
  blobs: Map<string, BlobDigest>;
  actions: { action: BlobDigest; output: BlobDigest }[];
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function uploadByteStream(c: KilnClients, data: Buffer): Promise<BlobDigest> {
  const digest = await digestOf(data);
  const name = uploadResourceName('', randomUUID(), digest);
  const chunk = 64 * KiB;
  const requests = [];
  for (let at = 0; at < data.length; at += chunk) {
    const end = Math.min(data.length, at + chunk);
    requests.push({ resourceName: at === 0 ? name : '', writeOffset: at, data: data.subarray(at, end), finishWrite: end === data.length });
  }
  const res = await c.byteStream.write(requests);
  expect(Number(res.committedSize)).toBe(data.length);
  return digest;
}

async function batchWrite(c: KilnClients, blobs: Buffer[]): Promise<BlobDigest[]> {
  const digests = await Promise.all(blobs.map((b) => digestOf(b)));
  const res = await c.cas.batchUpdate({ requests: blobs.map((data, i) => ({ digest: toWireDigest(digests[i]!), data })) });
  return digests.filter((_, i) => res.responses[i]?.status?.code === Status.OK);
}

/** Runs an action that leaves a setsid'd sleeper behind; resolves with its AC entry once it is acknowledged. */
async function execute(c: KilnClients): Promise<{ action: BlobDigest; output: BlobDigest }> {
  const nonce = randomBytes(8).toString('hex');
  const pause = (Math.random() * 0.8).toFixed(2);
  const command = reapi.Command.create({
    arguments: ['sh', '-c', `setsid sleep ${SURVIVOR_MARK} >/dev/null 2>&1 & printf ${nonce} > out; sleep ${pause}`],
    outputPaths: ['out'],
    environmentVariables: [{ name: 'PATH', value: process.env.PATH ?? '/usr/bin:/bin' }],
  });
  const commandBytes = Buffer.from(reapi.Command.encode(command).finish());
  const commandDigest = await digestOf(commandBytes);
  const emptyDir = await digestOf(Buffer.alloc(0));
  const actionBytes = Buffer.from(
    reapi.Action.encode(reapi.Action.create({ commandDigest: toWireDigest(commandDigest), inputRootDigest: toWireDigest(emptyDir) })).finish(),
  );
  const actionDigest = await digestOf(actionBytes);
  await batchWrite(c, [commandBytes, actionBytes]);
  const ops = await c.execution.execute.collect({ actionDigest: toWireDigest(actionDigest) });
  const last = ops.at(-1)!;
  expect(last.done).toBe(true);
  const response = reapi.ExecuteResponse.decode(last.response!.value!);
  expect(response.status?.code ?? 0).toBe(Status.OK);
  expect(response.result?.exitCode).toBe(0);
  return { action: actionDigest, output: await digestOf(Buffer.from(nonce)) };
}

/** Keeps `what` going until the server dies; what was acknowledged goes into `acked`. Any INTERNAL is a fault. */
async function loop(alive: () => boolean, acked: Acked, faults: string[], what: 'upload' | 'batch' | 'execute', c: KilnClients) {
  while (alive()) {
    try {
      if (what === 'upload') {
        const d = await uploadByteStream(c, randomBytes(64 * KiB + Math.floor(Math.random() * 1536 * KiB)));
        acked.blobs.set(d.hash, d);
      } else if (what === 'batch') {
        const blobs = Array.from({ length: 8 }, () => randomBytes(1 + Math.floor(Math.random() * 32 * KiB)));
        for (const d of await batchWrite(c, blobs)) acked.blobs.set(d.hash, d);
      } else {
        acked.actions.push(await execute(c));
      }
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (process.env.KILN_FAULT_DEBUG) process.stderr.write(`DEBUG ${what}: ${code} ${(err as Error).message}\n`);
      if (alive() && code === Status.INTERNAL) faults.push(`${what}: ${(err as Error).message}`);
      if (!alive()) return;
    }
  }
}

async function verifyBlobs(c: KilnClients, digests: BlobDigest[], faults: string[]): Promise<void> {
  const missing = await c.cas.findMissing({ blobDigests: digests.map(toWireDigest) });
  for (const m of missing.missingBlobDigests) faults.push(`acknowledged blob ${m.hash}/${m.sizeBytes} is missing after restart`);
  for (const d of digests) {
    const { data } = await c.byteStream.read({ resourceName: `blobs/${d.hash}/${d.size}` }).catch(() => ({ data: Buffer.alloc(0) }));
    if (data.length !== d.size || sha(data) !== d.hash) faults.push(`blob ${d.hash}/${d.size} reads back wrong (${data.length} bytes)`);
  }
}

async function verifyActions(c: KilnClients, actions: Acked['actions'], faults: string[]): Promise<void> {
  for (const { action, output } of actions) {
    const result = await c.actionCache.get({ actionDigest: toWireDigest(action) }).catch(() => undefined);
    const out = result?.outputFiles.find((f) => f.path === 'out');
    if (!out || out.digest?.hash !== output.hash) {
      faults.push(`acknowledged action ${action.hash} has no intact AC entry after restart`);
      continue;
    }
    await verifyBlobs(c, [output], faults);
  }
}

/** Every file the CAS holds hashes to its name: nothing half-written or corrupt became visible. */
async function scanStore(casDir: string, faults: string[]): Promise<number> {
  const entries = await scanEntries(casDir);
  for (const key of entries.keys()) {
    const d = parseDigestKey(key)!;
    if (d.fn !== 'sha256') continue;
    const data = await readFile(entryPath(casDir, d)).catch(() => undefined);
    if (!data || data.length !== d.size || sha(data) !== d.hash) faults.push(`stored file for ${key} is corrupt or half-written`);
  }
  return entries.size;
}

describe(`kill -9 during load, ${ROUNDS} rounds (KILN_FAULT_ROUNDS)`, () => {
  let dataDir: string;
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.kill9();
    for (const pid of processesMatching(SURVIVOR_MARK)) process.kill(pid, 'SIGKILL');
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('loses nothing acknowledged, corrupts nothing, and leaves no process behind', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'kiln-fault-kill9-'));
    const acked: Acked = { blobs: new Map(), actions: [] };
    const faults: string[] = [];
    let previous: Acked = { blobs: new Map(), actions: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      server = await startServer(dataDir, ['--cache-size', '8GiB', '--concurrency', '4']);
      // What the last round acknowledged just before its kill is what is most at risk.
      await verifyBlobs(server.clients, [...previous.blobs.values()], faults);
      await verifyActions(server.clients, previous.actions, faults);

      const thisRound: Acked = { blobs: new Map(), actions: [] };
      let alive = true;
      const c = server.clients;
      // Serving for real before the clock starts: a cold server's first calls are slow.
      for (const d of await batchWrite(c, [randomBytes(1024)])) thisRound.blobs.set(d.hash, d);
      thisRound.actions.push(await execute(c)); // and its launcher started
      const workers = (['upload', 'upload', 'batch', 'batch', 'execute', 'execute', 'execute'] as const).map((what) =>
        loop(() => alive, thisRound, faults, what, c),
      );
      await sleep(300 + Math.random() * 1500);
      alive = false;
      await server.kill9();
      server = undefined;
      await Promise.all(workers);
      for (const [k, d] of thisRound.blobs) acked.blobs.set(k, d);
      acked.actions.push(...thisRound.actions);
      previous = thisRound;

      // The launcher sees the engine go and takes every action (and what left its group) with it.
      let survivors: number[] = [];
      for (let i = 0; i < 100; i++) {
        survivors = processesMatching(SURVIVOR_MARK);
        if (survivors.length === 0) break;
        await sleep(50);
      }
      if (survivors.length > 0) faults.push(`round ${round}: ${survivors.length} action process(es) outlived the engine`);
      expect(faults, `round ${round}`).toEqual([]);
    }

    server = await startServer(dataDir, ['--cache-size', '8GiB', '--concurrency', '4']);
    await verifyBlobs(server.clients, [...acked.blobs.values()], faults);
    await verifyActions(server.clients, acked.actions, faults);
    await server.stop();
    server = undefined;
    const stored = await scanStore(join(dataDir, 'cas'), faults);
    process.stdout.write(
      `kill -9 rounds: ${ROUNDS}, acknowledged blobs: ${acked.blobs.size}, acknowledged actions: ${acked.actions.length}, ` +
        `stored files checked: ${stored}, faults: ${faults.length}\n`,
    );
    expect(faults).toEqual([]);
    expect(acked.blobs.size).toBeGreaterThan(0);
    expect(acked.actions.length).toBeGreaterThan(0);
  });
});
