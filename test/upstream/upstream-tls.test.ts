// An upstream behind TLS that demands a token (a Kiln with tls: on and
// require-token): --upstream-tls-ca and --upstream-header get Kiln in; without
// the header the upstream is reported unusable and actions run here.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { blobResourceName } from '../../engine/reapi/resource-names';
import { FakeExecutor } from '../execution/fake-executor';
import { executeRequest, responseOf, uploadAction } from '../execution/harness';
import { randomBlob, uploadBlob } from '../helpers/blobs';
import { connectClients, grpc } from '../helpers/clients';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { readFileSync } from 'node:fs';

const running: TestEngine[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

async function securedUpstream() {
  const upstream = await startTestEngine({ config: { tls: 'on', requireTokenOnLoopback: true } });
  running.push(upstream);
  return { upstream, caFile: join(upstream.dataDir, 'tls', 'ca.pem'), token: upstream.engine.access.tokens.add('downstream-kiln') };
}

describe('an upstream with TLS and a token', () => {
  it('is used with its CA and an authorization header', async () => {
    const { upstream, caFile, token } = await securedUpstream();
    const local = new FakeExecutor();
    const kiln = await startTestEngine({
      config: {
        upstream: `grpcs://127.0.0.1:${upstream.engine.grpcPort}`,
        upstreamTlsCaFile: caFile,
        upstreamHeaders: { authorization: `Bearer ${token}` },
        placement: 'upstream',
      },
      executor: local,
    });
    running.push(kiln);

    // Upload straight to the upstream (as its own client would), then read it through Kiln.
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    const direct = connectClients(`127.0.0.1:${upstream.engine.grpcPort}`, grpc.credentials.combineChannelCredentials(
      grpc.credentials.createSsl(readFileSync(caFile)),
      grpc.credentials.createFromMetadataGenerator((_p, cb) => cb(null, md)),
    ));
    try {
      const data = randomBlob(100_000);
      const digest = await uploadBlob(direct, data);
      const { data: got } = await kiln.clients.byteStream.read({ resourceName: blobResourceName('', digest) });
      expect(got.equals(data)).toBe(true);
    } finally {
      direct.close();
    }

    const action = await uploadAction(kiln.clients, { argv: ['/bin/sh', '-c', 'echo over tls'] });
    const response = responseOf((await kiln.clients.execution.execute.collect(executeRequest(action))).at(-1)!);
    expect(response.result?.exitCode).toBe(0);
    expect(local.runs).toHaveLength(0);
    expect(kiln.engine.upstreamStatus()?.reachable).toBe(true);
  });

  it('without the token, reports the upstream as unusable and runs actions here', async () => {
    const { upstream, caFile } = await securedUpstream();
    const local = new FakeExecutor();
    local.autoFinishExitCode = 0;
    const kiln = await startTestEngine({
      config: { upstream: `grpcs://127.0.0.1:${upstream.engine.grpcPort}`, upstreamTlsCaFile: caFile, placement: 'upstream' },
      executor: local,
    });
    running.push(kiln);
    const action = await uploadAction(kiln.clients, { argv: ['/bin/true'] });
    const response = responseOf((await kiln.clients.execution.execute.collect(executeRequest(action))).at(-1)!);
    expect(response.result?.exitCode).toBe(0);
    expect(local.runs).toHaveLength(1);
    const status = kiln.engine.upstreamStatus();
    expect(status?.reachable).toBe(false);
    expect(status?.problem).toMatch(/token/);
  });
});
