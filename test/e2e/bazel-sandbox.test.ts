// Real Bazel against Kiln with the sandbox on (issue 12): the basic fixture's
// actions (shell genrules, a tree artifact, a test) all run remotely inside
// bubblewrap and produce the same outputs as unsandboxed. The whole fixture
// suite can run sandboxed too: KILN_TEST_SANDBOX=on (test/e2e/harness.ts).
//
// Needs a Bazel (see bazel-exec.test.ts) and bubblewrap; each missing one is
// skipped, and the skip names it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';
import { BASIC_TARGETS, BazelWorkspace, executedKinds, expectBasicOutputs, findBazel2, findBazel4, parseProcessSummary, startKiln, type BazelInstall, type RunningKiln } from './harness';

const BAZELS: { label: string; install: BazelInstall | undefined }[] = [
  { label: 'Bazel 4.2.3', install: findBazel4() },
  { label: 'Bazel 2.1.0', install: findBazel2() },
];
const LONG = 10 * 60_000;
const probe = probeBubblewrap({ dataDir: '/nonexistent-kiln' });

for (const { label, install } of BAZELS) {
  const skip = !install ? ` (skipped: ${label} is not installed here; .ci/run installs it)` : !probe.available ? ` (skipped: ${probe.reason})` : '';
  describe.skipIf(!!skip)(`${label} with --remote_executor and the sandbox on${skip}`, () => {
    let kiln: RunningKiln;
    let ws: BazelWorkspace;

    beforeAll(async () => {
      kiln = await startKiln({ config: { sandbox: 'on' } });
      ws = await BazelWorkspace.create(install!, 'basic');
    }, LONG);

    afterAll(async () => {
      await ws?.dispose();
      await kiln?.stop();
    }, LONG);

    it('runs every action remotely in the sandbox with the right outputs', async () => {
      const res = await fetch(`${kiln.engine.httpUrl}api/status`, { headers: { authorization: `Bearer ${kiln.engine.httpToken}` } });
      expect(((await res.json()) as { sandbox?: { enabled: boolean } }).sandbox?.enabled).toBe(true);
      const flags = ['--remote_executor=' + kiln.url, '--spawn_strategy=remote', '--noremote_local_fallback', '--remote_timeout=60', '--remote_download_outputs=all', '--noremote_accept_cached'];
      const cold = await ws.build('test', flags, BASIC_TARGETS);
      expect(cold.code, cold.output).toBe(0);
      const summary = parseProcessSummary(cold.output);
      expect(summary, cold.output).toBeDefined();
      expect(Object.keys(executedKinds(summary!)), summary!.line).toEqual(['remote']);
      expect(cold.output).toMatch(/\/\/:shout_test\s+PASSED/);
      expect(await expectBasicOutputs(ws)).toEqual([]);
    }, LONG);
  });
}
