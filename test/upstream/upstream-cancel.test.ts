// Cancelling an upstream Execute before the upstream has named the operation:
// a server may hold its first message (Kiln holds stage updates a few ms), and
// the run there must still be cancelled by name, not just left running when
// our stream closes.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ExecutionService, OperationsService } from '../../engine/grpc/services';
import { longrunning, reapi } from '../../engine/proto';
import { UpstreamClient } from '../../engine/upstream/upstream-client';

const OPERATION = 'operations/held-first-message';

let server: grpc.Server | undefined;
let client: UpstreamClient | undefined;
afterEach(() => {
  client?.close();
  server?.forceShutdown();
  server = client = undefined;
});

/** An Execution server that sends its first message (naming the operation) only after `holdMs`, then keeps the stream open. */
async function holdingServer(holdMs: number) {
  const cancelled: string[] = [];
  server = new grpc.Server();
  server.addService(ExecutionService, {
    execute(call: grpc.ServerWritableStream<reapi.ExecuteRequest, longrunning.Operation>) {
      const timer = setTimeout(() => call.write(longrunning.Operation.create({ name: OPERATION, done: false })), holdMs);
      call.on('cancelled', () => clearTimeout(timer));
    },
  } as grpc.UntypedServiceImplementation);
  server.addService(OperationsService, {
    cancelOperation(call: grpc.ServerUnaryCall<longrunning.CancelOperationRequest, unknown>, done: grpc.sendUnaryData<unknown>) {
      cancelled.push(call.request.name);
      done(null, {});
    },
  } as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { url: `grpc://127.0.0.1:${port}`, cancelled };
}

/** Starts an Execute on the upstream through a new client and lets it run 50 ms; `abort` cancels it. */
async function executeFor50ms(url: string) {
  client = new UpstreamClient({ url });
  const controller = new AbortController();
  const run = client.execute({ fn: 'sha256', hash: 'a'.repeat(64), size: 1 }, { signal: controller.signal, deadlineMs: 30_000 });
  run.catch(() => {});
  await new Promise((r) => setTimeout(r, 50));
  return { run, abort: () => controller.abort() };
}

describe('UpstreamClient.execute, cancelled', () => {
  it('before the upstream named the operation: waits for the name, then cancels it there', async () => {
    const upstream = await holdingServer(300);
    const { run, abort } = await executeFor50ms(upstream.url);
    abort();
    await expect(run).rejects.toBeTruthy();
    await expect.poll(() => upstream.cancelled, { timeout: 5_000 }).toEqual([OPERATION]);
  });

  it('when the upstream never names it: gives up waiting and closes the stream', async () => {
    const upstream = await holdingServer(60_000);
    const { run, abort } = await executeFor50ms(upstream.url);
    const abortedAt = performance.now();
    abort();
    await expect(run).rejects.toBeTruthy();
    expect(performance.now() - abortedAt).toBeLessThan(5_000);
    expect(upstream.cancelled).toEqual([]);
  });
});
