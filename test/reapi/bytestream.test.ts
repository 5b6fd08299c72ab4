import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyDigest, type BlobDigest } from '../../engine/digest';
import { notFound } from '../../engine/grpc/status';
import { blobResourceName, uploadResourceName } from '../../engine/reapi/resource-names';
import { Status, digestOf, grpcError, randomBlob, startTestEngine, toWireDigest, uploadBlob, type TestEngine } from '../helpers';

const MiB = 1024 * 1024;
let t: TestEngine;

beforeAll(async () => {
  t = await startTestEngine();
});
afterAll(async () => {
  await t?.stop();
});

async function isStored(d: BlobDigest): Promise<boolean> {
  const res = await t.clients.cas.findMissing({ blobDigests: [toWireDigest(d)] });
  return res.missingBlobDigests.length === 0;
}

/** Polls QueryWriteStatus until the server has committed `size` bytes (the client cannot otherwise know). */
async function waitCommitted(name: string, size: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const st = await t.clients.byteStream.queryWriteStatus({ resourceName: name });
    if (Number(st.committedSize) >= size) return;
    await sleep(25);
  }
  throw new Error(`server never committed ${size} bytes of ${name}`);
}

function chunks(data: Buffer, from: number, to: number, size = 256 * 1024) {
  const out = [];
  for (let at = from; at < to; at += size) out.push({ writeOffset: at, data: data.subarray(at, Math.min(to, at + size)) });
  return out;
}

describe('ByteStream.Read', () => {
  let data: Buffer;
  let digest: BlobDigest;
  beforeAll(async () => {
    data = randomBlob(2 * MiB + 12345);
    digest = await uploadBlob(t.clients, data);
  });

  it('streams a whole blob in chunks of at most 1 MiB', async () => {
    const { data: got, chunkSizes } = await t.clients.byteStream.read({ resourceName: blobResourceName('', digest) });
    expect(got.equals(data)).toBe(true);
    expect(Math.max(...chunkSizes)).toBeLessThanOrEqual(MiB);
    expect(chunkSizes.length).toBeGreaterThanOrEqual(3);
  });

  it('keeps concurrent reads of different blobs byte for byte (responses are encoded into a reused buffer)', async () => {
    const others = [randomBlob(3 * MiB + 7), randomBlob(2 * MiB + 99)];
    const digests = await Promise.all(others.map((b) => uploadBlob(t.clients, b)));
    const reads = await Promise.all(
      [data, ...others, data].map((_, i) => t.clients.byteStream.read({ resourceName: blobResourceName('', [digest, ...digests, digest][i]!) })),
    );
    reads.forEach((r, i) => expect(Buffer.from(r.data).equals([data, ...others, data][i]!)).toBe(true));
  });

  it('honours read_offset and read_limit', async () => {
    const name = blobResourceName('', digest);
    // Buffer.equals, not toEqual: vitest's deep equality walks a megabyte byte by
    // byte and took over 30 s on a loaded machine.
    const read = async (readOffset: number, readLimit?: number) =>
      Buffer.from((await t.clients.byteStream.read({ resourceName: name, readOffset, readLimit })).data);
    expect((await read(1000, 5000)).equals(data.subarray(1000, 6000))).toBe(true);
    expect((await read(MiB + 7)).equals(data.subarray(MiB + 7))).toBe(true);
    expect((await read(data.length - 10, 1000)).equals(data.subarray(-10))).toBe(true);
    expect((await t.clients.byteStream.read({ resourceName: name, readOffset: data.length })).data.length).toBe(0);
  });

  it('answers OUT_OF_RANGE past the end or below zero and INVALID_ARGUMENT for a negative limit', async () => {
    const name = blobResourceName('', digest);
    const past = await grpcError(t.clients.byteStream.read({ resourceName: name, readOffset: data.length + 1 }));
    expect(past.code).toBe(Status.OUT_OF_RANGE);
    expect(past.details).toMatch(/past the end/);
    expect((await grpcError(t.clients.byteStream.read({ resourceName: name, readOffset: -1 }))).code).toBe(Status.OUT_OF_RANGE);
    expect((await grpcError(t.clients.byteStream.read({ resourceName: name, readLimit: -5 }))).code).toBe(Status.INVALID_ARGUMENT);
  });

  it('reads the empty blob of either function without it being uploaded', async () => {
    for (const fn of ['sha256', 'blake3'] as const) {
      expect((await t.clients.byteStream.read({ resourceName: blobResourceName('', emptyDigest(fn)) })).data.length).toBe(0);
    }
  });

  it('answers NOT_FOUND for an absent blob and INVALID_ARGUMENT for malformed names', async () => {
    const ghost = await digestOf(Buffer.from('ghost'));
    expect((await grpcError(t.clients.byteStream.read({ resourceName: blobResourceName('', ghost) }))).code).toBe(Status.NOT_FOUND);
    const h = ghost.hash;
    for (const name of [
      '',
      `blobs/${h}`,
      `blobs/${h}/-1`,
      `blobs/${h}/12abc`,
      `blobs/${h.toUpperCase()}/5`,
      `blobs/md5/${'a'.repeat(32)}/5`,
      `uploads/blobs/${h}/5`,
      `/blobs/${h}/5`,
      `a//b/blobs/${h}/5`,
      `compressed-blobs/brotli/${h}/5`,
    ]) {
      const err = await grpcError(t.clients.byteStream.read({ resourceName: name }));
      expect(err.code, name).toBe(Status.INVALID_ARGUMENT);
      expect(err.details.length).toBeGreaterThan(10);
    }
  });

  it('serves instance-scoped and function-named resource names', async () => {
    const small = Buffer.from('named function');
    const b3 = await uploadBlob(t.clients, small, { fn: 'blake3' });
    expect((await t.clients.byteStream.read({ resourceName: `team/linux/blobs/blake3/${b3.hash}/${b3.size}` })).data).toEqual(small);
    const sha = await uploadBlob(t.clients, small, { instance: 'team/linux' });
    expect((await t.clients.byteStream.read({ resourceName: `team/linux/blobs/${sha.hash}/${sha.size}` })).data).toEqual(small);
  });

  it('stops streaming when the client cancels, and keeps serving', async () => {
    const big = randomBlob(16 * MiB);
    const d = await uploadBlob(t.clients, big);
    const call = t.clients.byteStream.openRead({ resourceName: blobResourceName('', d) });
    const ended = new Promise<string>((resolve) => {
      call.on('error', (err: { code: number }) => resolve(`error ${err.code}`));
      call.on('end', () => resolve('end'));
    });
    await new Promise<void>((resolve) => call.once('data', () => resolve()));
    call.cancel();
    expect(await ended).toBe(`error ${Status.CANCELLED}`);
    expect((await t.clients.byteStream.read({ resourceName: blobResourceName('', d), readOffset: 16 * MiB - 3 })).data).toEqual(big.subarray(-3));
  });
});

describe('ByteStream.Write', () => {
  it('uploads in chunks and the blob becomes readable', async () => {
    const data = randomBlob(MiB + 99);
    const d = await digestOf(data);
    const name = uploadResourceName('', randomUUID(), d);
    const reqs = chunks(data, 0, data.length).map((c, i, all) => ({ ...c, resourceName: i === 0 ? name : '', finishWrite: i === all.length - 1 }));
    expect(Number((await t.clients.byteStream.write(reqs)).committedSize)).toBe(data.length);
    expect((await t.clients.byteStream.read({ resourceName: blobResourceName('', d) })).data.equals(data)).toBe(true);
    const st = await t.clients.byteStream.queryWriteStatus({ resourceName: name });
    expect(st.complete).toBe(true);
    expect(Number(st.committedSize)).toBe(data.length);
  });

  it('uploads a blob many times the write window in small messages, byte for byte', async () => {
    const data = randomBlob(20 * MiB + 4321); // WRITE_WINDOW_BYTES is 8 MiB: the stream has to wait for the disk
    const d = await digestOf(data);
    const name = uploadResourceName('', randomUUID(), d);
    const reqs = chunks(data, 0, data.length, 64 * 1024).map((c, i, all) => ({ ...c, resourceName: i === 0 ? name : '', finishWrite: i === all.length - 1 }));
    expect(Number((await t.clients.byteStream.write(reqs)).committedSize)).toBe(data.length);
    const back = await t.clients.byteStream.read({ resourceName: blobResourceName('', d) });
    expect(back.data.equals(data)).toBe(true);
  });

  it('resumes an interrupted upload from the committed size', async () => {
    const data = randomBlob(3 * MiB);
    const d = await digestOf(data);
    const name = uploadResourceName('', randomUUID(), d);

    const first = t.clients.byteStream.openWrite();
    first.response.catch(() => undefined);
    chunks(data, 0, MiB).forEach((c, i) => first.call.write({ ...c, resourceName: i === 0 ? name : '' }));
    await waitCommitted(name, MiB);
    first.call.cancel();
    expect((await grpcError(first.response)).code).toBe(Status.CANCELLED);

    expect(await isStored(d)).toBe(false);
    const st = await t.clients.byteStream.queryWriteStatus({ resourceName: name });
    expect(st.complete).toBe(false);
    expect(Number(st.committedSize)).toBe(MiB);

    const wrong = await grpcError(t.clients.byteStream.write([{ resourceName: name, writeOffset: 5, data: data.subarray(5, 10) }]));
    expect(wrong.code).toBe(Status.INVALID_ARGUMENT);
    expect(wrong.details).toContain('write_offset 5');
    expect(wrong.details).toContain(`${MiB} bytes committed`);

    const rest = chunks(data, MiB, data.length).map((c, i, all) => ({ ...c, resourceName: i === 0 ? name : '', finishWrite: i === all.length - 1 }));
    expect(Number((await t.clients.byteStream.write(rest)).committedSize)).toBe(data.length);
    expect((await t.clients.byteStream.read({ resourceName: blobResourceName('', d) })).data.equals(data)).toBe(true);
  });

  it('keeps a partial upload when the stream ends without finish_write, and a restart from 0 succeeds', async () => {
    const data = randomBlob(600 * 1024);
    const d = await digestOf(data);
    const name = uploadResourceName('', randomUUID(), d);
    const partial = await t.clients.byteStream.write(chunks(data, 0, 512 * 1024).map((c, i) => ({ ...c, resourceName: i === 0 ? name : '' })));
    expect(Number(partial.committedSize)).toBe(512 * 1024);
    expect(await isStored(d)).toBe(false);

    const again = chunks(data, 0, data.length).map((c, i, all) => ({ ...c, resourceName: i === 0 ? name : '', finishWrite: i === all.length - 1 }));
    expect(Number((await t.clients.byteStream.write(again)).committedSize)).toBe(data.length);
    expect(await isStored(d)).toBe(true);
  });

  it('ends early with the full size when the blob already exists', async () => {
    const data = randomBlob(700 * 1024);
    const d = await uploadBlob(t.clients, data);
    const w = t.clients.byteStream.openWrite();
    w.call.write({ resourceName: uploadResourceName('', randomUUID(), d), writeOffset: 0, data: data.subarray(0, 1024) });
    expect(Number((await w.response).committedSize)).toBe(data.length);
    w.call.end();

    const empty = await t.clients.byteStream.write([{ resourceName: uploadResourceName('', randomUUID(), emptyDigest()), finishWrite: true }]);
    expect(Number(empty.committedSize)).toBe(0);
  });

  it('rejects content that does not match its digest and stores nothing', async () => {
    const data = randomBlob(4096);
    const d = await digestOf(data);
    const other = Buffer.from(data);
    other[0] ^= 0xff;
    const name = uploadResourceName('', randomUUID(), d);
    const err = await grpcError(t.clients.byteStream.write([{ resourceName: name, data: other, finishWrite: true }]));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(await isStored(d)).toBe(false);

    const tooMuch = await grpcError(
      t.clients.byteStream.write([{ resourceName: uploadResourceName('', randomUUID(), d), data: Buffer.concat([data, data]), finishWrite: true }]),
    );
    expect(tooMuch.code).toBe(Status.INVALID_ARGUMENT);
    expect(tooMuch.details).toMatch(/more than its declared 4096 bytes/);

    const short = await grpcError(t.clients.byteStream.write([{ resourceName: uploadResourceName('', randomUUID(), d), data: data.subarray(1), finishWrite: true }]));
    expect(short.code).toBe(Status.INVALID_ARGUMENT);
    expect(await isStored(d)).toBe(false);
  });

  it('rejects malformed write requests precisely', async () => {
    const d = await digestOf(Buffer.from('x'));
    const cases: [string, object[], RegExp][] = [
      ['no name', [{ data: Buffer.from('x'), finishWrite: true }], /must set resource_name/],
      ['read name', [{ resourceName: blobResourceName('', d), data: Buffer.from('x'), finishWrite: true }], /uploads/],
      ['compressed, not zstd', [{ resourceName: `uploads/${randomUUID()}/compressed-blobs/zstd/${d.hash}/1`, data: Buffer.from('x') }], /not a valid zstd stream/],
      ['reserved instance', [{ resourceName: `actions/uploads/${randomUUID()}/blobs/${d.hash}/1`, data: Buffer.from('x') }], /reserved word/],
      ['first offset past committed', [{ resourceName: uploadResourceName('', randomUUID(), d), writeOffset: 1, data: Buffer.from('') }], /write_offset 1/],
    ];
    for (const [label, reqs, message] of cases) {
      const err = await grpcError(t.clients.byteStream.write(reqs));
      expect(err.code, label).toBe(Status.INVALID_ARGUMENT);
      expect(err.details, label).toMatch(message);
    }
    const q = await grpcError(t.clients.byteStream.queryWriteStatus({ resourceName: 'nonsense' }));
    expect(q.code).toBe(Status.INVALID_ARGUMENT);
  });
});

describe('live resources', () => {
  it('routes owned names to a LiveResourceReader with offset, limit and its errors', async () => {
    const seen: [string, number, number][] = [];
    t.engine.liveReaders.push({
      owns: (name) => name.includes('/livetest/') || name.startsWith('livetest/'),
      async read(name, offset, limit, sink) {
        seen.push([name, offset, limit]);
        if (name.endsWith('/gone')) throw notFound(`log stream ${name} does not exist`);
        await sink(Buffer.from('hello '));
        await sink(Buffer.from('world'));
      },
    });
    const { data } = await t.clients.byteStream.read({ resourceName: 'livetest/op1/stdout', readOffset: 3, readLimit: 9 });
    expect(data.toString()).toBe('hello world');
    expect(seen[0]).toEqual(['livetest/op1/stdout', 3, 9]);
    const err = await grpcError(t.clients.byteStream.read({ resourceName: 'main/livetest/gone' }));
    expect(err.code).toBe(Status.NOT_FOUND);
  });
});
