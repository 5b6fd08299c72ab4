// Execute end to end with the real LocalExecutor: real /bin/sh processes.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../engine/digest';
import { LocalExecutor } from '../../engine/worker/local-executor';
import { grpcError, Status } from '../helpers/clients';
import { toWireDigest } from '../helpers/blobs';
import { executeRequest, responseOf, startExecutionServer, uploadAction, type ExecutionServer } from './harness';

let server: ExecutionServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(): Promise<ExecutionServer> {
  server = await startExecutionServer({
    concurrency: 2,
    executor: (store, dataDir) => LocalExecutor.create({ store, buildRoot: join(dataDir, 'build') }),
  });
  return server;
}

describe('Execute with the LocalExecutor', () => {
  it('runs a shell command, uploads its outputs and caches the result', async () => {
    const s = await start();
    const c = s.clients;
    const digest = await uploadAction(c, {
      argv: ['/bin/sh', '-c', 'cat in.txt; mkdir -p out && printf data > out/f.txt'],
      inputs: { 'in.txt': 'hello\n' },
      outputPaths: ['out/f.txt'],
    });
    const ops = await c.execution.execute.collect(executeRequest(digest, { inlineStdout: true }));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code ?? 0).toBe(Status.OK);
    const result = response.result!;
    expect(result.exitCode).toBe(0);
    expect(Buffer.from(result.stdoutRaw).toString()).toBe('hello\n');
    const file = result.outputFiles.find((f) => f.path === 'out/f.txt');
    expect(file?.digest?.hash).toBe((await digestOf(Buffer.from('data'))).hash);
    const stored = await s.store.readAll({ fn: 'sha256', hash: file!.digest!.hash!, size: Number(file!.digest!.sizeBytes) });
    expect(stored.toString()).toBe('data');
    await expect(c.actionCache.get({ actionDigest: toWireDigest(digest) })).resolves.toBeTruthy();
  });

  it('reports a non-zero exit as OK with the exit code and does not cache it', async () => {
    const s = await start();
    const c = s.clients;
    const digest = await uploadAction(c, { argv: ['/bin/sh', '-c', 'echo oops >&2; exit 3'] });
    const response = responseOf((await c.execution.execute.collect(executeRequest(digest, { inlineStderr: true }))).at(-1)!);
    expect(response.status?.code ?? 0).toBe(Status.OK);
    expect(response.result?.exitCode).toBe(3);
    expect(Buffer.from(response.result!.stderrRaw).toString()).toBe('oops\n');
    expect((await grpcError(c.actionCache.get({ actionDigest: toWireDigest(digest) }))).code).toBe(Status.NOT_FOUND);
  });

  it('stops an action at its timeout with DEADLINE_EXCEEDED and what it printed', async () => {
    const s = await start();
    const c = s.clients;
    const digest = await uploadAction(c, { argv: ['/bin/sh', '-c', 'echo started; exec sleep 60'], timeoutMs: 1_000 });
    const response = responseOf((await c.execution.execute.collect(executeRequest(digest, { inlineStdout: true }))).at(-1)!);
    expect(response.status?.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(Buffer.from(response.result?.stdoutRaw ?? []).toString()).toBe('started\n');
    expect((await grpcError(c.actionCache.get({ actionDigest: toWireDigest(digest) }))).code).toBe(Status.NOT_FOUND);
  });
});
