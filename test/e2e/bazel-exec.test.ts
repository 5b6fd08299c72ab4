// Real Bazel against Kiln as a remote executor (--remote_executor with
// --spawn_strategy=remote and no local fallback): every action, the test
// included, must run on Kiln, produce the right outputs, report a failing
// action's exit code and stderr, and come back from Kiln's cache after
// `bazel clean`. Failures must never be cached.
//
// Needs a Bazel: Debian's bazel-bootstrap (/usr/bin/bazel-4, or $KILN_TEST_BAZEL4)
// and/or npm's @bazel/bazel-linux_x64@2.1.0 ($KILN_TEST_BAZEL2). A version that
// is not installed is skipped, and the skip names it; .ci/run installs both.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';
import {
  BASIC_TARGETS,
  BazelWorkspace,
  executedKinds,
  expectBasicOutputs,
  bazelsToTest,
  parseProcessSummary,
  startKiln,
  type RunningKiln,
} from './harness';

const BAZELS = bazelsToTest();

const LONG = 10 * 60_000;

function execFlags(url: string): string[] {
  return [
    '--remote_executor=' + url,
    '--spawn_strategy=remote',
    '--noremote_local_fallback',
    '--remote_timeout=60',
    '--remote_download_outputs=all',
  ];
}

for (const { label, install } of BAZELS) {
  // Skipped when this Bazel is not installed (see the header for where each comes from).
  describe.skipIf(!install)(`${label} with --remote_executor${install ? '' : ` (skipped: ${label} is not installed here; .ci/run installs it)`}`, () => {
    let kiln: RunningKiln;
    let ws: BazelWorkspace;

    beforeAll(async () => {
      kiln = await startKiln();
      ws = await BazelWorkspace.create(install!, 'basic');
    }, LONG);

    afterAll(async () => {
      await ws?.dispose();
      await kiln?.stop();
    }, LONG);

    it('runs every action remotely with the right outputs, then serves them from the cache after bazel clean', async () => {
      // The default configuration (sandbox: auto) sandboxes these actions wherever bubblewrap works: in
      // sandboxes made ahead per slot as root (a uid per action), in a bwrap per action otherwise.
      if (!process.env.KILN_TEST_SANDBOX) {
        const res = await fetch(`${kiln.engine.httpUrl}api/status`, { headers: { authorization: `Bearer ${kiln.engine.httpToken}` } });
        const sandbox = ((await res.json()) as { sandbox?: { enabled: boolean; reason: string } }).sandbox;
        const isRoot = process.getuid?.() === 0;
        const bwrapWorks = probeBubblewrap({ dataDir: '/nonexistent', ...(isRoot ? { runAs: { uid: 65534, gid: 65534, label: 'nobody' } } : {}) }).available;
        expect(sandbox?.enabled, sandbox?.reason).toBe(bwrapWorks);
        expect(sandbox?.reason).toMatch(!bwrapWorks ? /^sandbox: auto, but / : isRoot ? /made ahead for its slot/ : /each action gets a sandbox of its own/);
      }
      const cold = await ws.build('test', [...execFlags(kiln.url), '--noremote_accept_cached'], BASIC_TARGETS);
      expect(cold.code, cold.output).toBe(0);
      const coldSummary = parseProcessSummary(cold.output);
      expect(coldSummary, cold.output).toBeDefined();
      // Only 'remote': nothing may have run on the client.
      const ran = executedKinds(coldSummary!);
      expect(Object.keys(ran), coldSummary!.line).toEqual(['remote']);
      // greeting, shout, tree, tree_listing and the test itself.
      expect(ran.remote, coldSummary!.line).toBeGreaterThanOrEqual(5);
      expect(cold.output).toMatch(/\/\/:shout_test\s+PASSED/);
      expect(await expectBasicOutputs(ws)).toEqual([]);

      expect((await ws.clean()).code).toBe(0);

      const warm = await ws.build('test', execFlags(kiln.url), BASIC_TARGETS);
      expect(warm.code, warm.output).toBe(0);
      const warmSummary = parseProcessSummary(warm.output);
      expect(warmSummary, warm.output).toBeDefined();
      expect(executedKinds(warmSummary!), warmSummary!.line).toEqual({});
      expect(warmSummary!.kinds['remote cache hit'], warmSummary!.line).toBe(ran.remote);
      expect(await expectBasicOutputs(ws)).toEqual([]);
    }, LONG);

    it('reports a failing action with its exit code and stderr, and never caches the failure', async () => {
      const nonces: string[] = [];
      for (const attempt of [1, 2]) {
        const run = await ws.build('build', execFlags(kiln.url), ['//broken:broken']);
        expect(run.code, `attempt ${attempt}:\n${run.output}`).toBe(1);
        const message = /KILN_E2E_EXPECTED_FAILURE: this genrule exits 7 \(nonce (\S+)\)/.exec(run.output);
        expect(message, `attempt ${attempt}:\n${run.output}`).not.toBeNull();
        nonces.push(message![1]);
        expect(run.output, `attempt ${attempt}`).toMatch(/Exit 7/);
        // Bazel leaves failed spawns out of its summary; whatever it lists must not be local or cached.
        const summary = parseProcessSummary(run.output);
        if (summary) {
          expect(summary.kinds['remote cache hit'] ?? 0, summary.line).toBe(0);
          expect(Object.keys(executedKinds(summary)).filter((k) => k !== 'remote'), summary.line).toEqual([]);
        }
        expect(await ws.readOutput('broken/never.txt'), `attempt ${attempt}`).toBeUndefined();
      }
      // A replayed result would carry the first run's nonce.
      expect(nonces[1]).not.toBe(nonces[0]);
    }, LONG);
  });
}
