// A small disk that fills up: kiln serve on an 80 MiB tmpfs with a 64 MiB cache
// budget takes more concurrent uploads than fit, some abandoned half way. Every
// refusal is RESOURCE_EXHAUSTED (never INTERNAL), nothing acknowledged is lost or
// corrupt, and the store takes uploads again by itself.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { digestOf, type BlobDigest } from '../../engine/digest';
import { uploadResourceName } from '../../engine/reapi/resource-names';
import { Status, type KilnClients } from '../helpers';
import { sleep, startServer, type ServerProcess } from './server';

const MiB = 1024 * 1024;
const mountPoint = mkdtempSync(join(tmpdir(), 'kiln-fault-tmpfs-'));
let mounted = false;
let why = '';
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=80m', 'tmpfs', mountPoint], { stdio: 'pipe' });
  mounted = true;
} catch (err) {
  why = ((err as { stderr?: Buffer }).stderr?.toString() || (err as Error).message).trim().split('\n')[0]!;
}

/** Sends `data` in 256 KiB messages; `abandonAt` ends the stream there without finish_write. */
async function upload(c: KilnClients, data: Buffer, abandonAt?: number): Promise<{ digest: BlobDigest; code: number; details: string }> {
  const digest = await digestOf(data);
  const name = uploadResourceName('', randomUUID(), digest);
  const end = abandonAt ?? data.length;
  const requests = [];
  for (let at = 0; at < end; at += 256 * 1024) {
    const stop = Math.min(end, at + 256 * 1024);
    requests.push({ resourceName: at === 0 ? name : '', writeOffset: at, data: data.subarray(at, stop), finishWrite: stop === data.length });
  }
  try {
    await c.byteStream.write(requests);
    return { digest, code: Status.OK, details: '' };
  } catch (err) {
    const e = err as { code: number; details: string };
    return { digest, code: e.code, details: e.details };
  }
}

describe.skipIf(!mounted)(`a full disk${mounted ? '' : ` (skipped: a tmpfs cannot be mounted here: ${why})`}`, () => {
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.stop();
    if (mounted) execFileSync('umount', ['-l', mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  it('refuses with RESOURCE_EXHAUSTED, keeps what it acknowledged, and recovers', async () => {
    server = await startServer(join(mountPoint, 'data'), ['--cache-size', '64MiB', '--concurrency', '1']);
    const c = server.clients;
    const acknowledged = new Map<string, Buffer>();
    const codes = new Map<number, number>();
    const faults: string[] = [];
    for (let wave = 0; wave < 3; wave++) {
      const blobs = Array.from({ length: 16 }, () => randomBytes(6 * MiB));
      const results = await Promise.all(blobs.map((b, i) => upload(c, b, i % 4 === 0 ? 3 * MiB : undefined)));
      results.forEach((r, i) => {
        codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
        if (i % 4 !== 0 && r.code === Status.OK) acknowledged.set(r.digest.hash, blobs[i]!);
        if (![Status.OK, Status.RESOURCE_EXHAUSTED].includes(r.code)) faults.push(`upload answered ${r.code}: ${r.details}`);
        if (r.code === Status.RESOURCE_EXHAUSTED && !/full|budget/.test(r.details)) faults.push(`unclear refusal: ${r.details}`);
      });
    }
    expect(faults).toEqual([]);

    // Once nothing is in flight, the store takes new uploads again (evicting older blobs).
    let recovered = false;
    let lastRefusal = '';
    for (let attempt = 0; attempt < 20 && !recovered; attempt++) {
      const r = await upload(c, randomBytes(6 * MiB));
      recovered = r.code === Status.OK;
      if (!recovered) {
        lastRefusal = r.details;
        await sleep(500);
      }
    }
    expect(recovered, lastRefusal).toBe(true);

    // What is still stored reads back intact (older acknowledged blobs may have been evicted: the budget is 64 MiB).
    for (const [hash, data] of acknowledged) {
      const d = { hash, size: data.length };
      const missing = await c.cas.findMissing({ blobDigests: [{ hash, sizeBytes: d.size }] });
      if (missing.missingBlobDigests.length > 0) continue;
      const back = await c.byteStream.read({ resourceName: `blobs/${hash}/${d.size}` });
      expect(createHash('sha256').update(back.data).digest('hex')).toBe(hash);
    }
    process.stdout.write(`disk full: answers ${JSON.stringify(Object.fromEntries(codes))}, acknowledged ${acknowledged.size}\n`);
  });
});
