// Real Bazel and Kiln's invocations: two builds of the basic workspace with
// fixed --invocation_id, one that runs everything on Kiln and one after `bazel
// clean` that gets everything from Kiln's cache. GET /api/invocations must list
// both with the counts Bazel itself reports (executed = "N remote", cached =
// "N remote cache hit"), their targets, the test's run marked as such, and all
// of it again after Kiln restarts on the same data folder.
//
// Needs Bazel 4.2.3 (Debian's bazel-bootstrap, or $KILN_TEST_BAZEL4); skipped otherwise.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ActionPage, InvocationPage, InvocationSummary } from '../../engine/common/api-types';
import { BASIC_TARGETS, executedKinds, findBazel4, kilnSuite, parseProcessSummary } from './harness';

const LONG = 10 * 60_000;
const bazel = findBazel4();

describe.skipIf(!bazel)(`Bazel 4.2.3 invocations${bazel ? '' : ' (skipped: Bazel 4.2.3 is not installed here; .ci/run installs it)'}`, () => {
  const suite = kilnSuite(bazel, 'basic', LONG);
  const cold = randomUUID();
  const warm = randomUUID();


  const flags = () => [`--remote_executor=${suite.kiln.url}`, '--spawn_strategy=remote', '--noremote_local_fallback', '--remote_timeout=60'];

  it('lists both builds with the counts Bazel reports, their targets and the test run, also after a restart', async () => {
    const first = await suite.ws.build('test', [...flags(), `--invocation_id=${cold}`, '--noremote_accept_cached'], BASIC_TARGETS);
    expect(first.code, first.output).toBe(0);
    const ran = executedKinds(parseProcessSummary(first.output)!);
    expect(Object.keys(ran)).toEqual(['remote']);
    expect((await suite.ws.clean()).code).toBe(0);
    const second = await suite.ws.build('test', [...flags(), `--invocation_id=${warm}`], BASIC_TARGETS);
    expect(second.code, second.output).toBe(0);
    const hits = parseProcessSummary(second.output)!.kinds['remote cache hit'];
    expect(hits).toBeGreaterThan(0);

    const check = async () => {
      const list = await suite.api<InvocationPage>('/api/invocations');
      expect(list.items.map((i) => i.id)).toEqual([warm, cold]);
      const a = await suite.api<InvocationSummary>(`/api/invocations/${cold}`);
      expect(a.toolName).toBe('bazel');
      expect(a.actions).toMatchObject({ executed: ran.remote, cached: 0, failed: 0 });
      expect(a.targets).toEqual(expect.arrayContaining(['//:greeting', '//:shout_test']));
      const b = await suite.api<InvocationSummary>(`/api/invocations/${warm}`);
      expect(b.actions).toMatchObject({ executed: 0, cached: hits });
      const actions = await suite.api<ActionPage>(`/api/invocations/${cold}/actions?limit=500`);
      expect(actions.total).toBe(ran.remote);
      const testRun = actions.items.find((x) => x.role === 'test');
      expect(testRun, JSON.stringify(actions.items.map((x) => [x.mnemonic, x.target, x.role]))).toMatchObject({ target: '//:shout_test', outcome: 'success' });
    };
    await check();
    await suite.restart();
    await check();
  }, LONG);
});
