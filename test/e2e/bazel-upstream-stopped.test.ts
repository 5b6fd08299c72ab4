// Real Bazel 4.2.3 against a one-slot Kiln (placement local-first) whose
// upstream is another `kiln serve`: the burst overflows upstream, the upstream
// is killed (SIGKILL) mid-build, and the build still succeeds, the rest
// running here. Heavy: run it under flock /tmp/kiln-heavy.lock.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiStatus } from '../../engine/common/api-types';
import { waitForLine } from '../lan/netns';
import { BazelWorkspace, executedKinds, findBazel4, parseProcessSummary, startKiln, type RunningKiln } from './harness';

const bazel = findBazel4();
const LONG = 10 * 60_000;
const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'engine', 'cli.ts');
const COUNT = 40;

describe.skipIf(!bazel)(`Bazel 4.2.3 through a local-first Kiln whose upstream dies mid-build${bazel ? '' : ' (skipped: Bazel 4.2.3 is not installed here; .ci/run installs it)'}`, () => {
  let upstream: ChildProcess;
  let upstreamDir: string;
  let upstreamHttp: string;
  let kiln: RunningKiln;
  let ws: BazelWorkspace;

  beforeAll(async () => {
    upstreamDir = mkdtempSync(join(tmpdir(), 'kiln-e2e-upstream-'));
    upstream = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--port', '0', '--http-port', '0', '--data-dir', upstreamDir, '--concurrency', '4', '--mode', 'normal'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const [, url, http] = await waitForLine(upstream, /kiln listening (grpc:\/\/127\.0\.0\.1:\d+)\s+kiln dashboard (\S+?)\/?\s/m, 120_000);
    upstreamHttp = http!;
    kiln = await startKiln({ config: { upstream: url, placement: 'local-first', concurrency: 1, mode: 'normal' } });
    ws = await BazelWorkspace.create(bazel!, 'genrules');
  }, LONG);

  afterAll(async () => {
    await ws?.dispose();
    await kiln?.stop();
    if (upstream && upstream.exitCode === null && upstream.signalCode === null) {
      upstream.kill('SIGKILL');
      await new Promise((r) => upstream.once('exit', r));
    }
    if (upstreamDir) rmSync(upstreamDir, { recursive: true, force: true });
  }, LONG);

  it('builds everything right though the upstream is killed while it runs actions', async () => {
    const flags = [
      '--remote_executor=' + kiln.url,
      '--spawn_strategy=remote',
      '--genrule_strategy=remote',
      '--noremote_local_fallback',
      '--remote_timeout=120',
      '--remote_download_outputs=all',
      '--noremote_accept_cached',
      '--jobs=16',
    ];
    const build = ws.build('build', flags, ['//:many']);
    const upstreamRunning = async () => {
      const status = (await (await fetch(`${upstreamHttp}/api/status`)).json()) as ApiStatus;
      return status.running ?? 0;
    };
    let seen = 0;
    for (let i = 0; i < 600 && seen === 0; i++) {
      seen = await upstreamRunning().catch(() => 0);
      if (seen === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen, 'the upstream ran part of the burst').toBeGreaterThan(0);
    upstream.kill('SIGKILL');

    const run = await build;
    expect(run.code, run.output).toBe(0);
    expect(executedKinds(parseProcessSummary(run.output)!)).toEqual({ remote: COUNT + 1 });
    const lines = Array.from({ length: COUNT }, (_, i) => `item-${String(i).padStart(3, '0')}\n`).join('');
    expect(await ws.readOutput('many.txt')).toBe(lines);
    const places = new Set(kiln.engine.history.list({ state: 'finished', limit: 200 }).items.map((a) => kiln.engine.history.get(a.id)?.ranOn));
    expect(places.has('local')).toBe(true);
    expect(kiln.engine.upstreamStatus()?.reachable).toBe(false);
  }, LONG);
});
