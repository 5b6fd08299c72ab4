import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventOf } from '../../engine/events/event-bus';
import { reapi } from '../../engine/proto';
import { isActionResultComplete } from '../../engine/reapi/action-cache';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { Status, digestOf, grpcError, randomBlob, startTestEngine, toWireDigest, uploadBlob, uploadProto, type TestEngine } from '../helpers';

let t: TestEngine;
const lookups: EventOf<'cache.lookup'>[] = [];

beforeAll(async () => {
  t = await startTestEngine();
  t.engine.events.on('cache.lookup', (e) => e.store === 'ac' && lookups.push(e));
});
afterAll(async () => {
  await t?.stop();
});

async function actionDigest(label: string) {
  return toWireDigest(await digestOf(Buffer.from(`action ${label} ${Math.random()}`)));
}

/** A result with an output file, stdout, and an output directory whose Tree holds one file. */
async function fullResult() {
  const out = await uploadBlob(t.clients, Buffer.from('output file contents'));
  const stdout = await uploadBlob(t.clients, Buffer.from('stdout text'));
  const inTree = await uploadBlob(t.clients, randomBlob(100));
  const tree = reapi.Tree.create({ root: { files: [{ name: 'x.o', digest: toWireDigest(inTree) }] }, children: [] });
  const treeD = (await uploadProto(t.clients, reapi.Tree, tree)).digest;
  const result = reapi.ActionResult.create({
    exitCode: 0,
    outputFiles: [{ path: 'bin/out', digest: toWireDigest(out) }],
    outputDirectories: [{ path: 'objs', treeDigest: toWireDigest(treeD) }],
    stdoutDigest: toWireDigest(stdout),
  });
  return { result, out, stdout, inTree, treeD };
}

describe('ActionCache', () => {
  it('stores a result and serves it only to the same instance', async () => {
    const { result } = await fullResult();
    const key = await actionDigest('isolation');
    const stored = await t.clients.actionCache.update({ instanceName: 'a', actionDigest: key, actionResult: result });
    expect(stored.outputFiles[0]!.path).toBe('bin/out');

    lookups.length = 0;
    const got = await t.clients.actionCache.get({ instanceName: 'a', actionDigest: key });
    expect(got.outputFiles[0]!.digest?.hash).toBe(result.outputFiles[0]!.digest!.hash);
    // Answered with the stored bytes (nothing inlined): the whole result, field for field.
    expect(reapi.ActionResult.toObject(got, { defaults: true })).toEqual(reapi.ActionResult.toObject(stored, { defaults: true }));
    expect((await grpcError(t.clients.actionCache.get({ instanceName: 'b', actionDigest: key }))).code).toBe(Status.NOT_FOUND);
    expect((await grpcError(t.clients.actionCache.get({ actionDigest: key }))).code).toBe(Status.NOT_FOUND);
    expect(lookups.map((e) => [e.instance, e.hit])).toEqual([['a', true], ['b', false], ['', false]]);
  });

  it('answers NOT_FOUND, counted as a miss, when an output blob has left the CAS', async () => {
    const { result, out } = await fullResult();
    const key = await actionDigest('evicted-output');
    await t.clients.actionCache.update({ actionDigest: key, actionResult: result });
    await t.clients.actionCache.get({ actionDigest: key });
    await t.engine.store.delete({ fn: 'sha256', hash: out.hash, size: out.size });
    lookups.length = 0;
    const err = await grpcError(t.clients.actionCache.get({ actionDigest: key }));
    expect(err.code).toBe(Status.NOT_FOUND);
    expect(err.details).toMatch(/no longer all in the CAS/);
    expect(lookups.map((e) => e.hit)).toEqual([false]);
  });

  it('answers NOT_FOUND when a file inside an output Tree is gone', async () => {
    const { result, inTree } = await fullResult();
    const key = await actionDigest('evicted-tree-file');
    await t.clients.actionCache.update({ actionDigest: key, actionResult: result });
    await t.engine.store.delete(inTree);
    expect((await grpcError(t.clients.actionCache.get({ actionDigest: key }))).code).toBe(Status.NOT_FOUND);
  });

  it('inlines stdout and requested output files', async () => {
    const { result } = await fullResult();
    const key = await actionDigest('inline');
    await t.clients.actionCache.update({ actionDigest: key, actionResult: result });
    const plain = await t.clients.actionCache.get({ actionDigest: key });
    expect(plain.stdoutRaw.length).toBe(0);
    const inlined = await t.clients.actionCache.get({ actionDigest: key, inlineStdout: true, inlineOutputFiles: ['bin/out'] });
    expect(Buffer.from(inlined.stdoutRaw).toString()).toBe('stdout text');
    expect(Buffer.from(inlined.outputFiles[0]!.contents!).toString()).toBe('output file contents');
  });

  it('rejects results with malformed digests or escaping paths, naming the field', async () => {
    const key = await actionDigest('invalid');
    const badDigest = await grpcError(
      t.clients.actionCache.update({ actionDigest: key, actionResult: { outputFiles: [{ path: 'a', digest: { hash: 'xyz', sizeBytes: 3 } }] } }),
    );
    expect(badDigest.code).toBe(Status.INVALID_ARGUMENT);
    expect(badDigest.details).toMatch(/output_files\[0\]\.digest/);
    const d = toWireDigest(await digestOf(Buffer.from('x')));
    const badPath = await grpcError(
      t.clients.actionCache.update({ actionDigest: key, actionResult: { outputFiles: [{ path: '../etc/passwd', digest: d }] } }),
    );
    expect(badPath.code).toBe(Status.INVALID_ARGUMENT);
    expect(badPath.details).toMatch(/output_files\[0\]\.path/);
    expect((await grpcError(t.clients.actionCache.update({ actionDigest: key }))).code).toBe(Status.INVALID_ARGUMENT);
    expect((await grpcError(t.clients.actionCache.get({ actionDigest: { hash: 'q', sizeBytes: 1 } }))).code).toBe(Status.INVALID_ARGUMENT);
  });
});

describe('isActionResultComplete', () => {
  it('checks outputs, std streams and every Tree file', async () => {
    const store = new MemoryBlobStore();
    const file = Buffer.from('f');
    const fd = await digestOf(file);
    const tree = reapi.Tree.encode(reapi.Tree.create({ root: {}, children: [{ files: [{ name: 'f', digest: toWireDigest(fd) }] }] })).finish();
    const td = await digestOf(tree);
    await store.writeAll(td, tree);
    const result = { outputDirectories: [{ path: 'd', treeDigest: toWireDigest(td) }] };
    expect(await isActionResultComplete(store, result, 'sha256')).toBe(false);
    await store.writeAll(fd, file);
    expect(await isActionResultComplete(store, result, 'sha256')).toBe(true);
    expect(await isActionResultComplete(store, { stderrDigest: toWireDigest(await digestOf(Buffer.from('e'))) }, 'sha256')).toBe(false);
    const garbled = Buffer.from([0xff, 0xff, 0xff]);
    const gd = await digestOf(garbled);
    await store.writeAll(gd, garbled);
    expect(await isActionResultComplete(store, { outputDirectories: [{ path: 'g', treeDigest: toWireDigest(gd) }] }, 'sha256')).toBe(false);
  });
});
