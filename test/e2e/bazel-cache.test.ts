// Real Bazel against Kiln as a remote cache (--remote_cache): a first build runs
// every action locally and uploads the results; after `bazel clean` every action
// must come back as a remote cache hit, with the right outputs, also after Kiln
// restarts on the same data dir.
//
// Needs a Bazel: Debian's bazel-bootstrap (/usr/bin/bazel-4, or $KILN_TEST_BAZEL4)
// and/or npm's @bazel/bazel-linux_x64@2.1.0 ($KILN_TEST_BAZEL2). A version that
// is not installed is skipped, and the skip names it; .ci/run installs both.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

function cacheFlags(url: string): string[] {
  return ['--remote_cache=' + url, '--remote_upload_local_results', '--remote_timeout=60', '--remote_download_outputs=all'];
}

for (const { label, install } of BAZELS) {
  // Skipped when this Bazel is not installed (see the header for where each comes from).
  describe.skipIf(!install)(`${label} with --remote_cache${install ? '' : ` (skipped: ${label} is not installed here; .ci/run installs it)`}`, () => {
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

    it('uploads every result on a cold build and serves all of them after bazel clean', async () => {
      // Pass 1: no cache lookups, so every action really runs here and is uploaded.
      const cold = await ws.build('test', [...cacheFlags(kiln.url), '--noremote_accept_cached'], BASIC_TARGETS);
      expect(cold.code, cold.output).toBe(0);
      const coldSummary = parseProcessSummary(cold.output);
      expect(coldSummary, cold.output).toBeDefined();
      const ran = Object.values(executedKinds(coldSummary!)).reduce((a, b) => a + b, 0);
      // greeting, shout, tree, tree_listing, the test (and its test-setup helpers).
      expect(ran, coldSummary!.line).toBeGreaterThanOrEqual(5);
      expect(await expectBasicOutputs(ws)).toEqual([]);

      expect((await ws.clean()).code).toBe(0);

      // Pass 2: everything must come from Kiln.
      const warm = await ws.build('test', cacheFlags(kiln.url), BASIC_TARGETS);
      expect(warm.code, warm.output).toBe(0);
      const warmSummary = parseProcessSummary(warm.output)!;
      expect(warmSummary, warm.output).toBeDefined();
      expect(executedKinds(warmSummary), warmSummary.line).toEqual({});
      expect(warmSummary.kinds['remote cache hit'], warmSummary.line).toBe(ran);
      expect(warm.output).toMatch(/\/\/:shout_test\s+(\(cached\) )?PASSED/);
      expect(await expectBasicOutputs(ws)).toEqual([]);
    }, LONG);

    it('still serves every action after Kiln restarts on the same data dir', async () => {
      await kiln.stop({ keepData: true });
      kiln = await startKiln({ dataDir: kiln.dataDir });

      expect((await ws.clean()).code).toBe(0);
      const run = await ws.build('test', cacheFlags(kiln.url), BASIC_TARGETS);
      expect(run.code, run.output).toBe(0);
      const summary = parseProcessSummary(run.output)!;
      expect(summary, run.output).toBeDefined();
      expect(executedKinds(summary), summary.line).toEqual({});
      expect(summary.kinds['remote cache hit'] ?? 0, summary.line).toBeGreaterThanOrEqual(5);
      expect(await expectBasicOutputs(ws)).toEqual([]);
    }, LONG);

    it('misses on a fresh, empty Kiln (the hits above really came from the cache)', async () => {
      const empty = await startKiln();
      try {
        expect((await ws.clean()).code).toBe(0);
        const run = await ws.build('build', cacheFlags(empty.url), ['//:greeting']);
        expect(run.code, run.output).toBe(0);
        const summary = parseProcessSummary(run.output)!;
        expect(summary.kinds['remote cache hit'] ?? 0, summary.line).toBe(0);
        expect(Object.keys(executedKinds(summary)).length, summary.line).toBeGreaterThan(0);
      } finally {
        await empty.stop();
      }
    }, LONG);
  });
}
