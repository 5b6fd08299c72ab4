// Real Bazel 4.2.3 sends actions whose tool is a checked-in WASI module
// (workspaces/wasi) to Kiln with --remote_default_exec_properties=OSFamily=wasi,
// or through an execution platform with those exec_properties: they run in
// Kiln's WASI runner with the right outputs, and come back from Kiln's cache
// after `bazel clean`.
//
// Needs Debian's bazel-bootstrap (/usr/bin/bazel-4, or $KILN_TEST_BAZEL4); skipped, and says so, without it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BazelWorkspace, executedKinds, findBazel4, parseProcessSummary, startKiln, type RunningKiln } from './harness';

const LONG = 10 * 60_000;
const bazel = findBazel4();
const TARGETS = ['//:upper', '//:upper_again'];

function flags(url: string): string[] {
  return [
    '--remote_executor=' + url,
    '--remote_default_exec_properties=OSFamily=wasi',
    '--spawn_strategy=remote',
    '--noremote_local_fallback',
    '--remote_timeout=60',
    '--remote_download_outputs=all',
  ];
}

describe.skipIf(!bazel)(`Bazel 4.2.3 runs WASI actions on Kiln${bazel ? '' : ' (skipped: Bazel 4.2.3 is not installed here; .ci/run installs it)'}`, () => {
  let kiln: RunningKiln;
  let ws: BazelWorkspace;

  beforeAll(async () => {
    kiln = await startKiln();
    ws = await BazelWorkspace.create(bazel!, 'wasi');
  }, LONG);

  afterAll(async () => {
    await ws?.dispose();
    await kiln?.stop();
  }, LONG);

  it('runs the .wasm tool remotely with the right outputs, then serves them from the cache after bazel clean', async () => {
    const cold = await ws.build('build', [...flags(kiln.url), '--noremote_accept_cached'], TARGETS);
    expect(cold.code, cold.output).toBe(0);
    const coldSummary = parseProcessSummary(cold.output);
    expect(coldSummary, cold.output).toBeDefined();
    expect(executedKinds(coldSummary!), coldSummary!.line).toEqual({ remote: 2 });
    expect(await ws.readOutput('upper.txt')).toBe('ALPHA\nBETA\n');
    expect(await ws.readOutput('upper_again.txt')).toBe('ALPHA\nBETA\n');

    expect((await ws.clean()).code).toBe(0);

    const warm = await ws.build('build', flags(kiln.url), TARGETS);
    expect(warm.code, warm.output).toBe(0);
    const warmSummary = parseProcessSummary(warm.output);
    expect(executedKinds(warmSummary!), warmSummary!.line).toEqual({});
    expect(warmSummary!.kinds['remote cache hit'], warmSummary!.line).toBe(2);
    expect(await ws.readOutput('upper.txt')).toBe('ALPHA\nBETA\n');
  }, LONG);

  it('an execution platform whose exec_properties say OSFamily=wasi runs a target that asks for it (no flag needed)', async () => {
    const plain = flags(kiln.url).filter((f) => !f.startsWith('--remote_default_exec_properties'));
    const run = await ws.build('build', [...plain, '--extra_execution_platforms=//:kiln_wasi', '--noremote_accept_cached'], ['//:upper_on_platform']);
    expect(run.code, run.output).toBe(0);
    expect(executedKinds(parseProcessSummary(run.output)!)).toEqual({ remote: 1 });
    expect(await ws.readOutput('upper_on_platform.txt')).toBe('ALPHA\nBETA\n');
  }, LONG);

  it('without the WASI platform the same .wasm tool cannot run: the runner choice is the platform property', async () => {
    const plain = flags(kiln.url).filter((f) => !f.startsWith('--remote_default_exec_properties'));
    const run = await ws.build('build', [...plain, '--noremote_accept_cached'], ['//:upper']);
    // The process runner hands the module to the OS, which cannot execute it (the shell then chokes on it).
    expect(run.code, run.output).not.toBe(0);
    expect(run.output).toMatch(/Running tools\/upcase\.wasm on words\.txt failed/);
  }, LONG);
});
