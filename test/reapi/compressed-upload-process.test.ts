// Compressed uploads into `kiln serve` as a separate process: 512 MiB streamed
// zstd-compressed with the server's memory (RSS from /proc) bounded against its
// own baseline, and an upload resumed after the server restarts on its folder.
// Heavy: run under the shared lock (flock /tmp/kiln-heavy.lock ...).
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { compress } from 'zstd-napi';
import type { BlobDigest } from '../../engine/digest';
import { blobResourceName, uploadResourceName } from '../../engine/reapi/resource-names';
import { startServer, type ServerProcess } from '../fault/server';
import { Status, grpcError, type KilnClients } from '../helpers';

const MiB = 1024 * 1024;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serverOn(dataDir: string): Promise<ServerProcess> {
  const server = await startServer(dataDir);
  cleanups.push(() => server.stop());
  return server;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-zstd-proc-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Build-log-like text, different for each `seed`. */
function textPiece(size: number, seed: number): Buffer {
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const line = `piece ${seed} src/module_${(i * 7 + seed) % 211}/file_${i % 97}.cc:${i}: warning: unused variable 'tmp_${(i * 13) % 89}'\n`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

/** Piece `i` of the big blob: one text template, stamped with `i` every 64 KiB so no two pieces are alike (cheap to make). */
function stampedPiece(template: Buffer, i: number): Buffer {
  const piece = Buffer.from(template);
  const stamp = `[piece ${i}]`;
  for (let at = 0; at + stamp.length < piece.length; at += 64 * 1024) piece.write(stamp, at, 'latin1');
  return piece;
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** Sends `pieces` (already compressed) as one Write stream from `offset`, with backpressure. */
async function writeStream(clients: KilnClients, name: string, pieces: Iterable<Buffer>, offset: number, finish: boolean): Promise<number> {
  const { call, response } = clients.byteStream.openWrite();
  let at = offset;
  let first = true;
  const list = [...pieces];
  for (const [i, data] of list.entries()) {
    const ok = call.write({ resourceName: first ? name : '', writeOffset: at, data, finishWrite: finish && i === list.length - 1 });
    first = false;
    at += data.length;
    if (!ok) await new Promise((r) => call.once('drain', r));
  }
  call.end();
  return Number((await response).committedSize);
}

it('takes a 512 MiB zstd upload, compressed on the fly, with the server RSS bounded against its own baseline', async () => {
  const server = await serverOn(await tempDir());
  const pid = server.child.pid!;
  // Warm up the paths the big upload takes (zstd, the upload session), then take the baseline.
  const warm = textPiece(MiB, -1);
  const warmDigest: BlobDigest = { fn: 'sha256', hash: createHash('sha256').update(warm).digest('hex'), size: warm.length };
  await writeStream(server.clients, uploadResourceName('', randomUUID(), warmDigest, 'zstd'), [compress(warm)], 0, true);
  await new Promise((r) => setTimeout(r, 500));
  const baseline = rssOf(pid);

  const size = 512 * MiB;
  const pieceSize = 4 * MiB;
  const count = size / pieceSize;
  const template = textPiece(pieceSize, 0);
  // The digest first (the resource name carries it), piece by piece, never holding the blob.
  const hash = createHash('sha256');
  for (let i = 0; i < count; i++) hash.update(stampedPiece(template, i));
  const d: BlobDigest = { fn: 'sha256', hash: hash.digest('hex'), size };

  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 50);
  let sent = 0;
  try {
    const { call, response } = server.clients.byteStream.openWrite();
    const name = uploadResourceName('', randomUUID(), d, 'zstd');
    for (let i = 0; i < count; i++) {
      const packed = compress(stampedPiece(template, i), { compressionLevel: 1 }); // one frame per piece; frames concatenate
      // Bazel sends 16 KiB-ish messages; 256 KiB keeps the test quick and still many messages.
      for (let at = 0; at < packed.length; at += 256 * 1024) {
        const data = packed.subarray(at, at + 256 * 1024);
        const last = i === count - 1 && at + data.length >= packed.length;
        const ok = call.write({ resourceName: sent === 0 ? name : '', writeOffset: sent, data, finishWrite: last });
        sent += data.length;
        if (!ok) await new Promise((r) => call.once('drain', r));
      }
    }
    call.end();
    expect(Number((await response).committedSize)).toBe(sent);
    peak = Math.max(peak, rssOf(pid));
  } finally {
    clearInterval(sampler);
  }
  const missing = await server.clients.cas.findMissing({ blobDigests: [{ hash: d.hash, sizeBytes: d.size }] });
  expect(missing.missingBlobDigests).toHaveLength(0);
  const grew = peak - baseline;
  console.log(`512 MiB zstd upload (${(sent / MiB).toFixed(0)} MiB on the wire): server RSS ${(baseline / MiB).toFixed(0)} MiB at rest, peak +${(grew / MiB).toFixed(1)} MiB`);
  expect(grew, `server RSS grew ${(grew / MiB).toFixed(0)} MiB for a 512 MiB blob`).toBeLessThan(96 * MiB);
}, 600_000);

it('resumes a compressed upload after kiln serve is killed and restarted on the same folder', async () => {
  const dataDir = await tempDir();
  const data = Buffer.concat([textPiece(3 * MiB, 1), textPiece(3 * MiB, 2)]);
  const d: BlobDigest = { fn: 'sha256', hash: createHash('sha256').update(data).digest('hex'), size: data.length };
  const wire = compress(data, { compressionLevel: 3 });
  const half = Math.floor(wire.length / 2);
  const name = uploadResourceName('', randomUUID(), d, 'zstd');

  const first = await serverOn(dataDir);
  expect(await writeStream(first.clients, name, [wire.subarray(0, half)], 0, false)).toBe(half);
  expect(Number((await first.clients.byteStream.queryWriteStatus({ resourceName: name })).committedSize)).toBe(half);
  await first.kill9(); // no orderly shutdown: what was acknowledged must be on disk already

  const second = await serverOn(dataDir);
  const status = await second.clients.byteStream.queryWriteStatus({ resourceName: name });
  expect(Number(status.committedSize)).toBe(half);
  expect(status.complete).toBe(false);
  // A resume elsewhere is refused, naming where to continue, and leaves the upload as it was.
  const wrong = await grpcError(writeStream(second.clients, name, [wire.subarray(half - 10)], half - 10, true));
  expect(wrong.code).toBe(Status.INVALID_ARGUMENT);
  expect(wrong.details).toMatch(new RegExp(`${half} compressed bytes committed`));
  expect(Number((await second.clients.byteStream.queryWriteStatus({ resourceName: name })).committedSize)).toBe(half);

  expect(await writeStream(second.clients, name, [wire.subarray(half)], half, true)).toBe(wire.length);
  const back = await second.clients.byteStream.read({ resourceName: blobResourceName('', d) });
  expect(back.data.equals(data)).toBe(true);
  expect((await second.clients.byteStream.queryWriteStatus({ resourceName: name })).complete).toBe(true);
}, 180_000);
