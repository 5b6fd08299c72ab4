// x-kiln-forwarded through the whole engine: an Execute that carries it runs
// on this machine even where placement would send it elsewhere (here: an
// upstream with placement `upstream`), so an action a peer forwarded is never
// forwarded again; and a Kiln sends it on every call to a peer.
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { FORWARDED_HEADER } from '../../engine/grpc/services';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { FakeExecutor } from '../execution/fake-executor';
import { executeRequest, responseOf, uploadAction } from '../execution/harness';

const running: TestEngine[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

const idOf = (name: string) => name.replace(/^operations\//, '');

describe('forwarded actions', () => {
  it('run here whatever the placement; the same action without the header goes to the upstream', async () => {
    const upstream = await startTestEngine();
    running.push(upstream);
    const local = new FakeExecutor();
    local.autoFinishExitCode = 0;
    const kiln = await startTestEngine({ config: { upstream: `grpc://127.0.0.1:${upstream.engine.grpcPort}`, placement: 'upstream' }, executor: local });
    running.push(kiln);

    const forwarded = await uploadAction(kiln.clients, { argv: ['/bin/true'], salt: 'forwarded' });
    const md = new grpc.Metadata();
    md.set(FORWARDED_HEADER, '1');
    const ops = await kiln.clients.execution.execute.collect(executeRequest(forwarded, { skipCacheLookup: true }), md);
    expect(responseOf(ops.at(-1)!).result?.exitCode).toBe(0);
    expect(local.runs).toHaveLength(1);
    expect(local.runs[0]!.action.forwarded).toBe(true);
    expect(kiln.engine.history.get(idOf(ops.at(-1)!.name))?.ranOn).toBe('local');

    const plain = await uploadAction(kiln.clients, { argv: ['/bin/true'], salt: 'plain' });
    const plainOps = await kiln.clients.execution.execute.collect(executeRequest(plain));
    expect(kiln.engine.history.get(idOf(plainOps.at(-1)!.name))?.ranOn).toBe('upstream');
    expect(local.runs).toHaveLength(1);
  });

  it('are marked by the Kiln that forwards them to a peer', async () => {
    const peerFake = new FakeExecutor();
    peerFake.autoFinishExitCode = 0;
    const peer = await startTestEngine({ executor: peerFake });
    running.push(peer);
    const local = new FakeExecutor();
    const kiln = await startTestEngine({
      config: { concurrency: 1, peers: [{ url: `grpc://127.0.0.1:${peer.engine.grpcPort}`, statusUrl: peer.engine.httpUrl.replace(/\/$/, ''), name: 'p' }] },
      executor: local,
    });
    running.push(kiln);
    for (let i = 0; i < 100 && !kiln.engine.peers!.status()[0]!.slots; i++) await new Promise((r) => setTimeout(r, 100));

    const first = await uploadAction(kiln.clients, { argv: ['/bin/true'], salt: 'held' });
    const held = kiln.clients.execution.execute.collect(executeRequest(first));
    await local.started(1);
    const second = await uploadAction(kiln.clients, { argv: ['/bin/true'], salt: 'overflow' });
    const ops = await kiln.clients.execution.execute.collect(executeRequest(second));
    expect(kiln.engine.history.get(idOf(ops.at(-1)!.name))?.ranOn).toBe('peer:p');
    expect(peerFake.runs).toHaveLength(1);
    expect(peerFake.runs[0]!.action.forwarded).toBe(true);
    local.runs[0]!.finish();
    await held;
  });
});
