// The scheduler and Execution/Operations services as the Engine wires them.
import { afterEach, describe, expect, it } from 'vitest';
import { grpcError, Status } from '../helpers/clients';
import { startTestEngine, type TestEngine, type TestEngineOptions } from '../helpers/engine';
import { toWireDigest } from '../helpers/blobs';
import type { Executor } from '../../engine/execution/executor';
import { FakeExecutor } from './fake-executor';
import { executeRequest, metadataOf, responseOf, uploadAction } from './harness';
import { reapi, type longrunning } from '../../engine/proto';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

async function start(executor: Executor) {
  t = await startTestEngine({ executor } as TestEngineOptions);
  return t;
}

describe('Engine execution wiring', () => {
  it('executes through the engine: a running action is told EXECUTING, with live log stream names from the log hub', async () => {
    const executor = new FakeExecutor();
    const { clients: c } = await start(executor);
    const digest = await uploadAction(c, { argv: ['/bin/true'] });
    const call = c.execution.execute.open(executeRequest(digest));
    const ops: longrunning.Operation[] = [];
    const firstArrived = new Promise<void>((resolve) => call.once('data', () => resolve()));
    call.on('data', (op: longrunning.Operation) => ops.push(op));
    const ended = new Promise<void>((resolve, reject) => {
      call.on('error', reject);
      call.on('end', resolve);
    });
    const [run] = await executor.started(1);
    // The engine holds stage updates briefly (an action done by then answers with its result alone); this one still runs.
    await firstArrived;
    expect(metadataOf(ops[0]).stage).toBe(reapi.ExecutionStage.Value.EXECUTING);
    expect(metadataOf(ops[0]).stdoutStreamName).toMatch(/stdout$/);
    run.finish({ exitCode: 0 });
    await ended;
    expect(responseOf(ops.at(-1)!).result?.exitCode).toBe(0);
  });

  it('the execution switch refuses Execute and flips exec_enabled, while the cache keeps serving', async () => {
    const executor = new FakeExecutor();
    executor.autoFinishExitCode = 0;
    const { engine, clients: c } = await start(executor);
    const digest = await uploadAction(c, { argv: ['/bin/true'] });
    await c.execution.execute.collect(executeRequest(digest));
    engine.setExecutionEnabled(false);
    expect((await c.capabilities.get()).executionCapabilities?.execEnabled).toBe(false);
    const other = await uploadAction(c, { argv: ['/bin/true'], salt: 'x' });
    expect((await grpcError(c.execution.execute.collect(executeRequest(other)))).code).toBe(Status.UNAVAILABLE);
    await expect(c.actionCache.get({ actionDigest: toWireDigest(digest) })).resolves.toBeTruthy();
    engine.setExecutionEnabled(true);
    expect((await c.capabilities.get()).executionCapabilities?.execEnabled).toBe(true);
    const ops = await c.execution.execute.collect(executeRequest(other));
    expect(responseOf(ops.at(-1)!).result?.exitCode).toBe(0);
  });

  it('stop() cancels a running action once the drain time is up', async () => {
    const executor = new FakeExecutor();
    const { engine, clients: c } = await start(executor);
    const digest = await uploadAction(c, { argv: ['/bin/sleep', '100'] });
    c.execution.execute.collect(executeRequest(digest)).catch(() => {});
    const [run] = await executor.started(1);
    await engine.stop({ drainMs: 200 });
    expect(run.signal.aborted).toBe(true);
    expect(engine.scheduler?.view().running).toBe(0);
  });
});
