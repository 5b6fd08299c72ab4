// Kiln against an independent REAPI server: Bazel's reference worker
// (/work/shared/peers/reference-worker.sh) as the upstream. .ci/run starts it and
// sets KILN_REFERENCE_UPSTREAM=grpc://127.0.0.1:PORT; by hand, do the same (the
// project's own tests must not need ../shared, so npm test does not start it).
import { afterEach, describe, expect, it } from 'vitest';
import { DIGEST_FUNCTIONS, toBlobDigest, toWireDigest } from '../../engine/digest';
import { FakeExecutor } from '../execution/fake-executor';
import { executeRequest, responseOf } from '../execution/harness';
import { reapi } from '../../engine/proto';
import { randomBlob, uploadBlob, uploadProto } from '../helpers/blobs';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { UpstreamClient } from '../../engine/upstream/upstream-client';

const url = process.env.KILN_REFERENCE_UPSTREAM;
// Named in each test's title too, so a skipped test says why on its own line.
const why = url ? '' : ' (skipped: KILN_REFERENCE_UPSTREAM not set; .ci/run starts reference-worker.sh and sets it)';
const running: TestEngine[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

describe.skipIf(!url)(`the reference worker as upstream${url ? '' : ' (skipped: set KILN_REFERENCE_UPSTREAM=grpc://HOST:PORT of a running reference-worker.sh, as .ci/run does)'}`, () => {
  it(`runs an action there, brings the outputs back, and serves the second request from the local cache${why}`, async () => {
    const local = new FakeExecutor();
    const kiln = await startTestEngine({ config: { upstream: url, placement: 'upstream' }, executor: local });
    running.push(kiln);
    const salt = String(Date.now());
    // The v2.0 output fields, as Bazel 4.2.3 sends them: the reference worker reads only those.
    const input = await uploadBlob(kiln.clients, Buffer.from(`abc ${salt}`));
    const root = await uploadProto(kiln.clients, reapi.Directory, reapi.Directory.create({ files: [{ name: 'in.txt', digest: toWireDigest(input) }] }));
    const command = await uploadProto(kiln.clients, reapi.Command, reapi.Command.create({
      arguments: ['/bin/sh', '-c', 'rev < in.txt > out/r.txt; echo done'],
      outputFiles: ['out/r.txt'],
      environmentVariables: [{ name: 'PATH', value: '/usr/bin:/bin' }],
    }));
    const digest = (await uploadProto(kiln.clients, reapi.Action, reapi.Action.create({
      commandDigest: toWireDigest(command.digest),
      inputRootDigest: toWireDigest(root.digest),
    }))).digest;
    const response = responseOf((await kiln.clients.execution.execute.collect(executeRequest(digest))).at(-1)!);
    expect(response.status?.code ?? 0).toBe(0);
    expect(response.result?.exitCode).toBe(0);
    expect(local.runs).toHaveLength(0);
    const out = toBlobDigest(response.result!.outputFiles[0]!.digest, DIGEST_FUNCTIONS.sha256);
    expect((await kiln.engine.store.readAll(out)).toString()).toBe([...`abc ${salt}`].reverse().join(''));
    const again = responseOf((await kiln.clients.execution.execute.collect(executeRequest(digest))).at(-1)!);
    expect(again.cachedResult).toBe(true);
  });

  it(`writes through to it and reads a result back through a fresh Kiln${why}`, async () => {
    const first = await startTestEngine({ config: { upstream: url } });
    running.push(first);
    const output = await uploadBlob(first.clients, randomBlob(1_500_000));
    const actionDigest = await uploadBlob(first.clients, Buffer.from(`an action ${Date.now()}`));
    await first.clients.actionCache.update({
      actionDigest: toWireDigest(actionDigest),
      actionResult: { exitCode: 0, outputFiles: [{ path: 'o.bin', digest: toWireDigest(output) }] },
    });
    await first.engine.upstreamQueue!.drained();
    const direct = new UpstreamClient({ url: url! });
    try {
      expect(await direct.findMissing([output])).toEqual([]);
    } finally {
      direct.close();
    }

    const second = await startTestEngine({ config: { upstream: url } });
    running.push(second);
    const result = await second.clients.actionCache.get({ actionDigest: toWireDigest(actionDigest) });
    expect(result.outputFiles[0]?.digest?.hash).toBe(output.hash);
    expect(await second.engine.store.has(output)).toBe(true);
  });
});
