// `kiln token` and `kiln connect` as a user runs them: child processes on a
// data dir, next to a running `kiln serve --require-token --tls on` on loopback.
import * as grpc from '@grpc/grpc-js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capabilitiesStatus } from './lan-clients';
import { waitForLine } from './netns';

const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'engine', 'cli.ts');
const dataDir = mkdtempSync(join(tmpdir(), 'kiln-cli-lan-'));
let server: ChildProcess | undefined;
/** The running server's gRPC address, from the first test. */
let target = '';

afterAll(async () => {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server!.once('exit', r));
  }
  rmSync(dataDir, { recursive: true, force: true });
});

function kiln(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Polls, because the engine re-reads tokens.json at most once a second. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`never happened: ${what}`);
}

describe('kiln token and kiln connect', () => {
  it('adds, lists and revokes tokens on a data dir, and a running engine honours a revoke without restart', async () => {
    server = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--host', '127.0.0.1', '--require-token', '--tls', 'on', '--port', '0', '--http-port', '0', '--data-dir', dataDir], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const [, port] = await waitForLine(server, /^kiln listening grpcs:\/\/127\.0\.0\.1:(\d+)$/m);
    const creds = () => grpc.credentials.createSsl(readFileSync(join(dataDir, 'tls', 'ca.pem')));
    target = `127.0.0.1:${port}`;

    const added = kiln('token', 'add', 'alice', '--data-dir', dataDir);
    expect(added.code).toBe(0);
    const token = added.stdout.trim();
    expect(token).toMatch(/^kiln_\S+$/);
    expect(added.stderr).toContain(`--remote_header=authorization="Bearer ${token}"`);
    expect(readFileSync(join(dataDir, 'tokens.json'), 'utf8')).not.toContain(token);

    const listed = kiln('token', 'list', '--data-dir', dataDir);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^alice\t\d{4}-\d\d-\d\dT/m);

    expect((await capabilitiesStatus(target, creds())).code).toBe(grpc.status.UNAUTHENTICATED);
    await eventually(async () => (await capabilitiesStatus(target, creds(), token)).code === grpc.status.OK, 'the new token is served');

    expect(kiln('token', 'revoke', 'alice', '--data-dir', dataDir).code).toBe(0);
    await eventually(async () => (await capabilitiesStatus(target, creds(), token)).code === grpc.status.UNAUTHENTICATED, 'the revoked token is refused');
    expect(kiln('token', 'list', '--data-dir', dataDir).stdout).not.toContain('alice');

    const unknown = kiln('token', 'revoke', 'alice', '--data-dir', dataDir);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no token named "alice"/);
    expect(kiln('token', 'add', '--data-dir', dataDir).code).toBe(2);
  }, 180_000);

  it('prints the .bazelrc lines with grpcs, the CA file and a fresh token that works', async () => {
    const r = kiln('connect', '--data-dir', dataDir, '--host', 'kiln.example.internal', '--port', '8990');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe('build --remote_executor=grpcs://kiln.example.internal:8990');
    expect(lines[1]).toBe(`build --tls_certificate=${join(dataDir, 'tls', 'ca.pem')}`);
    const m = /^build --remote_header=authorization="Bearer (kiln_[^"\s]+)"$/.exec(lines[2]);
    expect(m).not.toBeNull();
    const ca = readFileSync(join(dataDir, 'tls', 'ca.pem'));
    await eventually(async () => (await capabilitiesStatus(target, grpc.credentials.createSsl(ca), m![1])).code === grpc.status.OK, 'the connect token is served');
    const name = /made token "([^"]+)"/.exec(r.stderr)?.[1];
    expect(name).toMatch(/^connect-\d{8}-\d{6}/);
    expect(kiln('token', 'list', '--data-dir', dataDir).stdout).toContain(name);
  }, 120_000);

  it('prints help for each command', () => {
    for (const cmd of ['token', 'connect', 'discover']) {
      const r = kiln(cmd, '--help');
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toContain(`Usage: kiln ${cmd}`);
    }
  }, 120_000);
});
