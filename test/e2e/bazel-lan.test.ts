// LAN mode with a real Bazel: `kiln serve --require-token --tls on` on
// loopback (grpcs://, a certificate from Kiln's own CA), a token made with
// `kiln token add`, and Bazel 4.2.3 building the basic workspace with
// --tls_certificate and --remote_header. Every action must run on Kiln. The
// same build without the header (or with a wrong token) must fail with
// UNAUTHENTICATED, and nothing may run anywhere.
//
// Needs Bazel 4.2.3 (Debian's bazel-bootstrap at /usr/bin/bazel-4, or
// $KILN_TEST_BAZEL4) and, for that Debian build, libnetty-tcnative-jni (see
// bazelTlsSupport in harness.ts); skipped with the reason otherwise.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForLine } from '../lan/netns';
import {
  BASIC_TARGETS,
  BazelWorkspace,
  bazelTlsSupport,
  executedKinds,
  expectBasicOutputs,
  findBazel4,
  parseProcessSummary,
} from './harness';

const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'engine', 'cli.ts');
const LONG = 10 * 60_000;

const bazel = findBazel4();
const tls = bazel ? bazelTlsSupport(bazel) : undefined;
const skipReason = !bazel ? 'Bazel 4.2.3 not installed' : tls && !tls.ok ? tls.reason : '';

/** The CLI as a user runs it (through tsx, so no build step races other work in the checkout). */
function kilnArgs(...args: string[]): string[] {
  return ['--import', 'tsx', CLI, ...args];
}

describe.skipIf(!!skipReason)(`Bazel 4.2.3 over TLS with a token (LAN mode)${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let dataDir: string;
  let server: ChildProcess | undefined;
  let serverLog = '';
  let url = '';
  let token = '';
  let ws: BazelWorkspace;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'kiln-e2e-lan-'));
    // Made before the engine starts, so it is known from the first call (a running engine re-reads tokens within a second).
    const added = spawnSync(process.execPath, kilnArgs('token', 'add', 'e2e', '--data-dir', dataDir), { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    expect(added.status, `kiln token add: ${added.stderr}`).toBe(0);
    token = added.stdout.split('\n')[0].trim();
    expect(token, added.stdout).toMatch(/^kiln_\S+$/);

    server = spawn(
      process.execPath,
      kilnArgs('serve', '--host', '127.0.0.1', '--require-token', '--tls', 'on', '--port', '0', '--http-port', '0', '--data-dir', dataDir),
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    server.stderr!.on('data', (d) => (serverLog += d));
    const [, port] = await waitForLine(server, /^kiln listening grpcs:\/\/127\.0\.0\.1:(\d+)$/m, 120_000);
    url = `grpcs://127.0.0.1:${port}`;
    ws = await BazelWorkspace.create(bazel!, 'basic', { tls: true });
  }, LONG);

  afterAll(async () => {
    await ws?.dispose();
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }, LONG);

  function lanFlags(header?: string): string[] {
    return [
      `--remote_executor=${url}`,
      `--tls_certificate=${join(dataDir, 'tls', 'ca.pem')}`,
      '--spawn_strategy=remote',
      '--noremote_local_fallback',
      '--remote_timeout=60',
      '--remote_download_outputs=all',
      ...(header ? [`--remote_header=authorization=${header}`] : []),
    ];
  }

  it('builds and tests every target remotely over grpcs:// with the token', async () => {
    const run = await ws.build('test', [...lanFlags(`Bearer ${token}`), '--noremote_accept_cached'], BASIC_TARGETS);
    expect(run.code, `${run.output}\n--- kiln stderr ---\n${serverLog}`).toBe(0);
    const summary = parseProcessSummary(run.output);
    expect(summary, run.output).toBeDefined();
    const ran = executedKinds(summary!);
    expect(Object.keys(ran), summary!.line).toEqual(['remote']);
    expect(ran.remote, summary!.line).toBeGreaterThanOrEqual(5);
    expect(run.output).toMatch(/\/\/:shout_test\s+PASSED/);
    expect(await expectBasicOutputs(ws)).toEqual([]);
  }, LONG);

  it('builds with the lines of `kiln connect` pasted into a .bazelrc as they are', async () => {
    const port = new URL(url.replace(/^grpcs/, 'https')).port;
    const connect = spawnSync(process.execPath, kilnArgs('connect', '--data-dir', dataDir, '--host', '127.0.0.1', '--port', port), {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(connect.status, `kiln connect: ${connect.stderr}`).toBe(0);
    const lines = connect.stdout.trim().split('\n');
    expect(lines.some((l) => l.startsWith('build --remote_header='))).toBe(true);
    const rc = join(ws.root, 'connect.bazelrc');
    await writeFile(rc, connect.stdout);
    // A running Kiln picks up the token kiln connect just made within a second.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await ws.clean()).code).toBe(0);
    const flags = ['--spawn_strategy=remote', '--noremote_local_fallback', '--remote_timeout=60', '--remote_download_outputs=all', '--noremote_accept_cached'];
    const run = await ws.build('build', flags, ['//:greeting'], { bazelrc: rc });
    expect(run.code, `${connect.stdout}\n${run.output}\n--- kiln stderr ---\n${serverLog}`).toBe(0);
    expect(executedKinds(parseProcessSummary(run.output)!)).toHaveProperty('remote');
    expect(await ws.readOutput('greeting.txt')).toBeDefined();
  }, LONG);

  it('fails the same build with UNAUTHENTICATED without the header, and with a wrong token', async () => {
    for (const [what, header] of [
      ['without the header', undefined],
      ['with a wrong token', 'Bearer kiln_not-a-real-token'],
    ] as const) {
      expect((await ws.clean()).code, what).toBe(0);
      const run = await ws.build('build', lanFlags(header), ['//:greeting']);
      expect(run.code, `${what}:\n${run.output}`).not.toBe(0);
      expect(run.output, what).toMatch(/UNAUTHENTICATED/);
      // Nothing ran anywhere, and no output came from anywhere.
      expect(await ws.readOutput('greeting.txt'), what).toBeUndefined();
    }
  }, LONG);
});
