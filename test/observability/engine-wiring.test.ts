// The observability pieces wired into a real Engine: HTTP API up with the
// engine, the token on disk, LogStream names served through the engine's ByteStream.
import * as grpc from '@grpc/grpc-js';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteStreamService, clients } from '../../engine/grpc/services';
import { bytestream } from '../../engine/proto';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { parsePrometheus, sampleValue } from './prom-parser';
import { waitFor } from './helpers';

describe('engine wiring', () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await startTestEngine();
  }, 60_000);
  afterAll(() => t?.stop());

  it('serves the HTTP API next to gRPC with the token from the data dir', async () => {
    const { engine } = t;
    expect(engine.httpPort).toBeGreaterThan(0);
    expect(engine.httpUrl).toBe(`http://127.0.0.1:${engine.httpPort}/`);
    expect(readFileSync(join(t.dataDir, 'http-token'), 'utf8').trim()).toBe(engine.httpToken);
    const status = await (await fetch(`${engine.httpUrl}api/status`)).json();
    expect(status).toMatchObject({ serving: true, grpcUrl: engine.grpcUrl, concurrency: 2, cacheBudgetBytes: 1024 ** 3 });
    const prom = parsePrometheus(await (await fetch(`${engine.httpUrl}metrics`)).text());
    expect(sampleValue(prom, 'kiln_store_budget_bytes')).toBe(1024 ** 3);

    const refused = await fetch(`${engine.httpUrl}api/execution`, { method: 'POST', body: '{"enabled": false}' });
    expect(refused.status).toBe(401);
    const ok = await fetch(`${engine.httpUrl}api/execution`, {
      method: 'POST',
      body: '{"enabled": false}',
      headers: { Authorization: `Bearer ${engine.httpToken}` },
    });
    expect(ok.status).toBe(200);
    expect(engine.executionEnabled).toBe(false);
    expect(engine.metrics.snapshot().executionEnabled).toBe(false);
    engine.setExecutionEnabled(true);
  }, 30_000);

  it('tails a log stream through the engine ByteStream service', async () => {
    const { engine } = t;
    const names = engine.logStreams.streamNamesFor('wired-1', '');
    const paths = engine.logs.pathsFor('wired-1');
    engine.events.emit({ type: 'action.queued', id: 'wired-1', at: Date.now(), actionDigest: 'd', instance: '' });
    engine.events.emit({ type: 'action.started', id: 'wired-1', at: Date.now(), slot: 0, stdoutPath: paths.stdout, stderrPath: paths.stderr });
    const client = new clients.ByteStream(`127.0.0.1:${engine.grpcPort}`, grpc.credentials.createInsecure());
    try {
      const call = client.makeServerStreamRequest(
        ByteStreamService.read.path,
        ByteStreamService.read.requestSerialize,
        ByteStreamService.read.responseDeserialize,
        bytestream.ReadRequest.create({ resourceName: names.stdout }),
      ) as grpc.ClientReadableStream<bytestream.ReadResponse>;
      let text = '';
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (r: bytestream.ReadResponse) => (text += Buffer.from(r.data).toString()));
        call.on('end', resolve);
        call.on('error', reject);
      });
      appendFileSync(paths.stdout, 'running\n');
      await waitFor(() => text === 'running\n', 'line while running');
      appendFileSync(paths.stdout, 'done\n');
      engine.events.emit({
        type: 'action.finished', id: 'wired-1', at: Date.now(), outcome: 'success', exitCode: 0,
        timing: { queuedMs: 0, inputFetchMs: 0, executionMs: 0, outputUploadMs: 0, totalMs: 0 },
      });
      await done;
      expect(text).toBe('running\ndone\n');
      expect((await (await fetch(`${engine.httpUrl}api/actions/wired-1`)).json()).state).toBe('finished');
    } finally {
      client.close();
    }
  }, 30_000);
});
