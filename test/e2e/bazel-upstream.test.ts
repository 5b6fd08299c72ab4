// Real Bazel 4.2.3 against a Kiln whose upstream is Bazel's reference worker
// (placement: upstream): every action runs on the worker, the outputs come back
// right, and after `bazel clean` Kiln's own cache serves them.
//
// Needs Bazel 4.2.3 (see bazel-exec.test.ts) and a running reference worker:
// start /work/shared/peers/reference-worker.sh --port N and set
// KILN_REFERENCE_UPSTREAM=grpc://127.0.0.1:N (.ci/run does both).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASIC_TARGETS, BazelWorkspace, executedKinds, expectBasicOutputs, findBazel4, parseProcessSummary, startKiln, type RunningKiln } from './harness';

const bazel = findBazel4();
const upstream = process.env.KILN_REFERENCE_UPSTREAM;
const LONG = 10 * 60_000;
const why = !bazel
  ? ' (skipped: Bazel 4.2.3 is not installed)'
  : !upstream
    ? ' (skipped: KILN_REFERENCE_UPSTREAM, the grpc:// address of a running reference-worker.sh, is not set; .ci/run starts one and sets it)'
    : '';

describe.skipIf(!bazel || !upstream)(`Bazel 4.2.3 through Kiln to the reference worker${why}`, () => {
  let kiln: RunningKiln;
  let ws: BazelWorkspace;

  beforeAll(async () => {
    kiln = await startKiln({ config: { upstream, placement: 'upstream' } });
    ws = await BazelWorkspace.create(bazel!, 'basic');
  }, LONG);

  afterAll(async () => {
    await ws?.dispose();
    await kiln?.stop();
  }, LONG);

  it(`runs every action upstream, with the right outputs, then serves them from the local cache${why}`, async () => {
    const flags = ['--remote_executor=' + kiln.url, '--spawn_strategy=remote', '--noremote_local_fallback', '--remote_timeout=120', '--remote_download_outputs=all'];
    const cold = await ws.build('test', [...flags, '--noremote_accept_cached'], BASIC_TARGETS);
    expect(cold.code, cold.output).toBe(0);
    const summary = parseProcessSummary(cold.output);
    expect(summary, cold.output).toBeDefined();
    const ran = executedKinds(summary!);
    expect(Object.keys(ran), summary!.line).toEqual(['remote']);
    expect(await expectBasicOutputs(ws)).toEqual([]);

    // Every action Kiln ran, it ran upstream.
    const finished = kiln.engine.history.list({ state: 'finished' }).items;
    expect(finished.length).toBeGreaterThanOrEqual(ran.remote!);
    for (const a of finished) expect(kiln.engine.history.get(a.id)?.ranOn, a.id).toBe('upstream');

    expect((await ws.clean()).code).toBe(0);
    const warm = await ws.build('test', flags, BASIC_TARGETS);
    expect(warm.code, warm.output).toBe(0);
    const warmSummary = parseProcessSummary(warm.output);
    expect(executedKinds(warmSummary!), warmSummary!.line).toEqual({});
    expect(await expectBasicOutputs(ws)).toEqual([]);
  }, LONG);
});

describe.skipIf(!bazel)(`Bazel 4.2.3 through Kiln whose upstream is down${bazel ? '' : ' (skipped: Bazel 4.2.3 is not installed)'}`, () => {
  let kiln: RunningKiln;
  let ws: BazelWorkspace;

  beforeAll(async () => {
    // A port that was just free: nothing answers there.
    const gone = await startKiln();
    const deadUrl = gone.url;
    await gone.stop();
    kiln = await startKiln({ config: { upstream: deadUrl, placement: 'upstream' } });
    ws = await BazelWorkspace.create(bazel!, 'basic');
  }, LONG);

  afterAll(async () => {
    await ws?.dispose();
    await kiln?.stop();
  }, LONG);

  it('still builds everything, on this machine, and reports the upstream unreachable', async () => {
    const flags = ['--remote_executor=' + kiln.url, '--spawn_strategy=remote', '--noremote_local_fallback', '--remote_timeout=120', '--remote_download_outputs=all'];
    const run = await ws.build('test', [...flags, '--noremote_accept_cached'], BASIC_TARGETS);
    expect(run.code, run.output).toBe(0);
    expect(await expectBasicOutputs(ws)).toEqual([]);
    const finished = kiln.engine.history.list({ state: 'finished' }).items;
    expect(finished.length).toBeGreaterThanOrEqual(5);
    for (const a of finished) expect(kiln.engine.history.get(a.id)?.ranOn, a.id).toBe('local');
    expect(kiln.engine.upstreamStatus()?.reachable).toBe(false);
  }, LONG);
});
