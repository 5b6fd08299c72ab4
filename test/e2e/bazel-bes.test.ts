// Real Bazel publishing to Kiln's Build Event Service: a `bazel build`, a
// `bazel clean`, then a `bazel test` of the basic workspace, both with --remote_executor and
// --bes_backend on Kiln and fixed --invocation_ids. GET /api/invocations must
// give each its action counts (executed and cached, as Bazel reports them),
// command line, targets with outcomes and exit status, and the test's result
// with a test.log readable through GET /api/blobs; all of it again after Kiln
// restarts on the same data folder.
//
// Needs Bazel 4.2.3 (Debian's bazel-bootstrap, or $KILN_TEST_BAZEL4); skipped otherwise.
// Heavy: run it under the shared lock (flock /tmp/kiln-heavy.lock …).
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { InvocationPage, InvocationSummary } from '../../engine/common/api-types';
import { BASIC_TARGETS, executedKinds, findBazel4, kilnSuite, parseProcessSummary } from './harness';

const LONG = 10 * 60_000;
const bazel = findBazel4();

describe.skipIf(!bazel)(`Bazel 4.2.3 Build Event Service${bazel ? '' : ' (skipped: Bazel 4.2.3 is not installed here; .ci/run installs it)'}`, () => {
  const suite = kilnSuite(bazel, 'basic', LONG);
  const built = randomUUID();
  const tested = randomUUID();


  const flags = () => [
    `--remote_executor=${suite.kiln.url}`,
    `--bes_backend=${suite.kiln.url}`,
    '--bes_timeout=120s',
    '--spawn_strategy=remote',
    '--noremote_local_fallback',
    '--remote_timeout=60',
  ];

  it('shows both builds with counts, command line, targets and the test result with its test.log, also after a restart', async () => {
    const first = await suite.ws.build('build', [...flags(), `--invocation_id=${built}`, '--noremote_accept_cached'], ['//:shout']);
    expect(first.code, first.output).toBe(0);
    const ranFirst = executedKinds(parseProcessSummary(first.output)!).remote;
    expect(ranFirst).toBeGreaterThan(0);
    // After a clean, Bazel asks Kiln's action cache for what the first build made.
    expect((await suite.ws.clean()).code).toBe(0);
    const second = await suite.ws.build('test', [...flags(), `--invocation_id=${tested}`], BASIC_TARGETS);
    expect(second.code, second.output).toBe(0);
    const summary = parseProcessSummary(second.output)!;
    const ranSecond = executedKinds(summary).remote ?? 0;
    const hits = summary.kinds['remote cache hit'] ?? 0;

    const check = async () => {
      const list = await suite.api<InvocationPage>('/api/invocations');
      expect(list.items.map((i) => i.id)).toEqual([tested, built]);

      const a = await suite.api<InvocationSummary>(`/api/invocations/${built}`);
      expect(a.actions).toMatchObject({ executed: ranFirst, cached: 0, failed: 0 });
      expect(a.state).toBe('finished');
      expect(a.build).toMatchObject({ command: 'build', exitCode: { name: 'SUCCESS', code: 0 } });
      expect(a.build!.commandLine).toEqual(expect.arrayContaining([`--invocation_id=${built}`, '//:shout']));
      expect(a.build!.targets).toEqual([expect.objectContaining({ label: '//:shout', kind: 'genrule rule', outcome: 'built' })]);
      expect(a.build!.tests).toEqual([]);

      const b = await suite.api<InvocationSummary>(`/api/invocations/${tested}`);
      // Bazel's own counts: greeting and shout come from the cache, the rest runs.
      expect(b.actions).toMatchObject({ executed: ranSecond, cached: hits, failed: 0 });
      expect(hits).toBeGreaterThan(0);
      expect(b.build).toMatchObject({ command: 'test', exitCode: { name: 'SUCCESS', code: 0 } });
      expect(b.build!.targets.map((t) => [t.label, t.outcome]).sort()).toEqual(BASIC_TARGETS.map((l) => [l, 'built']).sort());
      expect(b.build!.tests).toHaveLength(1);
      const [test] = b.build!.tests;
      expect(test).toMatchObject({ label: '//:shout_test', status: 'PASSED' });
      const log = test.runs[0].testLog;
      expect(log?.uri).toMatch(/^bytestream:\/\//);
      expect(log?.blob).toBeDefined();
      const res = await fetch(new URL(`/api/blobs/${log!.blob!.hash}/${log!.blob!.size}`, suite.kiln.engine.httpUrl));
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('shout_test ok'); // What the test script printed.
    };
    await check();
    await suite.restart();
    await check();
  }, LONG);

  it('shows a build that sent BES but ran nothing remotely: its build events, no actions', async () => {
    const local = randomUUID();
    const run = await suite.ws.build('build', [`--bes_backend=${suite.kiln.url}`, '--bes_timeout=120s', `--invocation_id=${local}`, '--spawn_strategy=local'], ['//:greeting']);
    expect(run.code, run.output).toBe(0);
    const inv = await suite.api<InvocationSummary>(`/api/invocations/${local}`);
    expect(inv.actions).toMatchObject({ executed: 0, cached: 0, failed: 0 });
    expect(inv.state).toBe('finished');
    expect(inv.build).toMatchObject({ command: 'build', exitCode: { name: 'SUCCESS', code: 0 } });
    expect(inv.build!.targets).toEqual([expect.objectContaining({ label: '//:greeting', outcome: 'built' })]);
  }, LONG);
});
