// The crash-safety promise, checked the hard way: `kiln serve` runs in its own
// process, clients upload blobs (BatchUpdateBlobs and ByteStream) and cache results
// concurrently, and the server is killed with SIGKILL in the middle. After a restart
// every blob and action-cache entry the server acknowledged must be there, byte for
// byte, and no file in the store may hold bytes other than the ones its name promises.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFolderPath } from '../../engine/sandbox/build-folder';
import { reapi } from '../../engine/proto';
import { readSegments } from '../../engine/store/write-ahead-log';
import { connectClients, type KilnClients } from '../helpers';
import { ENGINE_V8_FLAGS } from '../../engine/util/v8-flags';

const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'engine', 'cli.ts');
/** Kills per run: each costs a server start (a few seconds through tsx on a loaded machine). */
const ROUNDS = 3;
const children: ChildProcess[] = [];
const dirs: string[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) {
    await rm(d, { recursive: true, force: true });
    // A killed serve leaves its build folder in /var/tmp (the next start on the same data folder would take it back).
    if (process.getuid?.() === 0) await rm(buildFolderPath(d, 0), { recursive: true, force: true });
  }
});

interface Digest {
  hash: string;
  sizeBytes: number;
}

const digestOf = (data: Uint8Array): Digest => ({ hash: createHash('sha256').update(data).digest('hex'), sizeBytes: data.byteLength });

async function startServe(dataDir: string): Promise<{ child: ChildProcess; clients: KilnClients; exited: Promise<unknown> }> {
  // With the engine's V8 flags given, serve does not relaunch itself, so the SIGKILL below hits the engine.
  const child = spawn(process.execPath, ['--import', 'tsx', ...ENGINE_V8_FLAGS, CLI, 'serve', '--port', '0', '--http-port', '0', '--data-dir', dataDir], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (b) => (stderr += b));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`kiln serve exited ${code} before it was ready; stderr: ${stderr}`)));
  });
  const m = /grpc:\/\/(\S+)/.exec(line);
  if (!m) throw new Error(`unexpected first line from kiln serve: ${line}`);
  return { child, clients: connectClients(m[1]!), exited };
}

/** What the server said is stored: blobs by hash, results by action hash. */
interface Acknowledged {
  blobs: Map<string, Buffer>;
  results: Map<string, { actionDigest: Digest; encoded: Uint8Array }>;
  /** Every result sent, acknowledged or not: whatever is on disk must be one of these, whole. */
  attemptedResults: Map<string, Uint8Array>;
}

/**
 * Writers that loop until the server goes away, each recording only what the server
 * acknowledged. Their failures after the kill are expected and ignored.
 */
/** `now` ends the writers; while `paused` is set they wait for it. */
interface WriterControl {
  now: boolean;
  paused?: Promise<void>;
}

function startWriters(clients: KilnClients, acked: Acknowledged, stop: WriterControl): Promise<unknown>[] {
  const batchWriter = async () => {
    while (!stop.now) {
      await stop.paused;
      const blobs = Array.from({ length: 16 }, () => randomBytes(64 + Math.floor(Math.random() * 4000)));
      const res = await clients.cas.batchUpdate({ requests: blobs.map((data) => ({ digest: digestOf(data), data })) });
      res.responses.forEach((r, i) => {
        if ((r.status?.code ?? 0) === 0) acked.blobs.set(digestOf(blobs[i]!).hash, blobs[i]!);
      });
    }
  };
  const streamWriter = async () => {
    while (!stop.now) {
      await stop.paused;
      const data = randomBytes(200_000 + Math.floor(Math.random() * 400_000));
      const d = digestOf(data);
      const resourceName = `uploads/${randomUUID()}/blobs/${d.hash}/${d.sizeBytes}`;
      const chunk = 64 * 1024;
      const requests = [];
      for (let off = 0; off < data.length; off += chunk) {
        const end = Math.min(off + chunk, data.length);
        requests.push({ resourceName: off === 0 ? resourceName : '', writeOffset: off, data: data.subarray(off, end), finishWrite: end === data.length });
      }
      const res = await clients.byteStream.write(requests);
      if (Number(res.committedSize) === data.length) acked.blobs.set(d.hash, data);
    }
  };
  const resultWriter = async () => {
    while (!stop.now) {
      await stop.paused;
      // Outputs the server has already acknowledged, so a later lookup must be a hit.
      const outputs = [...acked.blobs.entries()].slice(-3);
      if (outputs.length === 0) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      const actionDigest = digestOf(randomBytes(32));
      const result = reapi.ActionResult.create({
        exitCode: 0,
        outputFiles: outputs.map(([hash, data], i) => ({ path: `out/${i}`, digest: { hash, sizeBytes: data.byteLength } })),
      });
      const encoded = reapi.ActionResult.encode(result).finish();
      acked.attemptedResults.set(actionDigest.hash, encoded);
      await clients.actionCache.update({ actionDigest, actionResult: result });
      acked.results.set(actionDigest.hash, { actionDigest, encoded });
    }
  };
  return [batchWriter(), batchWriter(), streamWriter(), resultWriter(), resultWriter()].map((p) => p.catch(() => undefined));
}

/** Regular files under `dir` named {hash}-{size} (entries of the CAS or the action cache), with their bytes. */
async function* storeFiles(dir: string): AsyncGenerator<{ name: string; hash: string; size: number; data: Buffer }> {
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const m = /^([0-9a-f]{64})-(\d+)$/.exec(entry.name);
    if (!entry.isFile() || !m) continue;
    const data = await readFile(join(entry.parentPath ?? entry.path, entry.name));
    yield { name: entry.name, hash: m[1]!, size: Number(m[2]), data };
  }
}


/** After a restart: every acknowledged blob and result is there and reads back exactly as written. */
async function expectAllAcknowledged(dataDir: string, acked: Acknowledged): Promise<void> {
  const { child, clients } = await startServe(dataDir);
  try {
    const digests = [...acked.blobs.entries()].map(([hash, data]) => ({ hash, sizeBytes: data.byteLength }));
    const missing = await clients.cas.findMissing({ blobDigests: digests });
    expect(missing.missingBlobDigests.map((d) => d.hash)).toEqual([]);
    for (const [hash, data] of acked.blobs) {
      const read = await clients.byteStream.read({ resourceName: `blobs/${hash}/${data.byteLength}` });
      expect(read.data.equals(data), `blob ${hash} reads back as written`).toBe(true);
    }
    for (const { actionDigest, encoded } of acked.results.values()) {
      const got = await clients.actionCache.get({ actionDigest });
      expect(Buffer.from(reapi.ActionResult.encode(got).finish()).equals(Buffer.from(encoded)), `result of ${actionDigest.hash}`).toBe(true);
    }
  } finally {
    clients.close();
    child.kill('SIGKILL');
  }
}

/**
 * Nothing half-written under a real name: each CAS file hashes to its name, each action-cache file is a result sent for it.
 * `complete`: a file for every acknowledged write too, which holds once a start has replayed the logs (a killed
 * process may not have written the files of acknowledgements since the puts last paused: the log holds them).
 */
async function expectNothingTorn(dataDir: string, acked: Acknowledged, complete: boolean): Promise<void> {
  let casFiles = 0;
  // (SHA-256 only: the folders of other functions hold just their empty blob.)
  for await (const f of storeFiles(join(dataDir, 'cas', 'sha256'))) {
    expect({ file: f.name, size: f.data.byteLength, hash: digestOf(f.data).hash }).toEqual({ file: f.name, size: f.size, hash: f.hash });
    casFiles++;
  }
  if (complete) expect(casFiles).toBeGreaterThanOrEqual(acked.blobs.size);
  let acFiles = 0;
  for await (const f of storeFiles(join(dataDir, 'ac'))) {
    const sent = acked.attemptedResults.get(f.hash);
    expect(sent && Buffer.from(sent).equals(f.data), `action-cache file ${f.name} holds a result that was sent for it`).toBe(true);
    acFiles++;
  }
  if (complete) expect(acFiles).toBeGreaterThanOrEqual(acked.results.size);
}

/** Starts a server, writes until this round has blobs and results acknowledged, then kills it with SIGKILL mid-write. */
async function writeAndKill(dataDir: string, acked: Acknowledged): Promise<void> {
  const { child, clients, exited } = await startServe(dataDir);
  const stop: WriterControl = { now: false };
  const blobsBefore = acked.blobs.size;
  const resultsBefore = acked.results.size;
  const writers = startWriters(clients, acked, stop);
  // Kill only once this round has blobs and results acknowledged, so every round tests both.
  const deadline = Date.now() + 20_000;
  while ((acked.blobs.size < blobsBefore + 10 || acked.results.size < resultsBefore + 3) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  // A pause: the server writes the files of what it acknowledged once the puts pause for a second
  // (store/logged-files.ts), so the kill finds both files written out and puts only in the log.
  let resume = () => {};
  stop.paused = new Promise((r) => (resume = r));
  await new Promise((r) => setTimeout(r, 1_200 + Math.random() * 400));
  stop.paused = undefined;
  resume();
  await new Promise((r) => setTimeout(r, 50 + Math.random() * 250));
  child.kill('SIGKILL');
  await exited;
  stop.now = true;
  await Promise.all(writers);
  clients.close();
}

describe('kiln serve killed with SIGKILL during writes', () => {
  it(
    'keeps every acknowledged blob and action-cache entry, and shows nothing half-written',
    async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'kiln-crash-'));
      dirs.push(dataDir);
      const acked: Acknowledged = { blobs: new Map(), results: new Map(), attemptedResults: new Map() };

      for (let round = 0; round < ROUNDS; round++) await writeAndKill(dataDir, acked);
      expect(acked.blobs.size).toBeGreaterThan(0);
      expect(acked.results.size).toBeGreaterThan(0);
      await expectNothingTorn(dataDir, acked, false); // as the kill left it
      await expectAllAcknowledged(dataDir, acked);
      await expectNothingTorn(dataDir, acked, true); // after the restart's replay
    },
    60_000,
  );

  it(
    'puts back from the write-ahead log what a power loss right after the kill could empty',
    async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'kiln-crash-'));
      dirs.push(dataDir);
      const acked: Acknowledged = { blobs: new Map(), results: new Map(), attemptedResults: new Map() };
      await writeAndKill(dataDir, acked);
      // Small blobs and entries written since the last checkpoint were renamed into place but
      // not fsynced: a power loss may leave them empty. Do that to every one the logs name.
      let emptied = 0;
      for (const store of ['cas', 'ac']) {
        for (const { path } of (await readSegments(join(dataDir, store, 'wal'))).records) {
          const file = join(dataDir, store, path);
          const mode = await stat(file).then((s) => s.mode & 0o777, () => undefined);
          if (mode === undefined) continue; // logged but not yet in place, or removed since
          await chmod(file, 0o644); // CAS files are read-only
          await truncate(file, 0);
          await chmod(file, mode);
          emptied++;
        }
      }
      expect(emptied).toBeGreaterThan(0);
      await expectAllAcknowledged(dataDir, acked);
      await expectNothingTorn(dataDir, acked, true);
    },
    60_000,
  );
});
