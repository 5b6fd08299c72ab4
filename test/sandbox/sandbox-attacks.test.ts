// Each attack from issue 12 as a real action through Execute, against an
// engine with the sandbox on and the same engine with it off: the attack must
// fail sandboxed and succeed unsandboxed (so none of these can pass vacuously).
// Needs bubblewrap and namespaces; skipped with the probe's reason otherwise.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { entryPath } from '../../engine/store/cas-layout';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';
import { buildFolderPath } from '../../engine/sandbox/build-folder';
import type { SandboxMode } from '../../engine/common/api-types';
import { uploadBlob } from '../helpers/blobs';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { runScript, type ActionSpec } from '../execution/harness';

const probe = probeBubblewrap({ dataDir: '/nonexistent' });
const skipReason = probe.available ? '' : ` (skipped: ${probe.reason})`;

describe.skipIf(!probe.available).each<{ sandbox: SandboxMode; sandboxed: boolean }>([
  { sandbox: 'on', sandboxed: true },
  { sandbox: 'off', sandboxed: false },
])(`attacks from an action, sandbox $sandbox${skipReason}`, ({ sandbox, sandboxed }) => {
  let t: TestEngine;
  let secretDir: string;
  let seq = 0;

  beforeAll(async () => {
    // Limits from the configuration (the unsandboxed engine cannot enforce them). Unsandboxed, actions
    // run as Kiln's own user here, so the attacks can succeed (action-user.test.ts has the action user).
    const actionUser = sandboxed ? 'auto' : 'none';
    t = await startTestEngine({ config: { sandbox, actionUser, actionMemoryBytes: 128 * 1024 ** 2, actionProcesses: 40 } });
    // Something of the engine user's own, outside Kiln's data folder.
    secretDir = mkdtempSync(join(homedir(), '.kiln-sandbox-test-'));
    writeFileSync(join(secretDir, 'id_ed25519'), 'PRIVATE KEY');
  });
  afterAll(async () => {
    await t?.stop();
    rmSync(secretDir, { recursive: true, force: true });
  });

  /** Runs a shell script as an action; returns exit code, stdout, stderr and the Execute status. */
  const run = (script: string, over: Partial<ActionSpec> = {}) => runScript(t.clients, script, `${sandbox}-${++seq}`, over);

  it('cannot read a file in the engine user\'s home, nor Kiln\'s http-token or a CAS blob', async () => {
    const blob = Buffer.from(`a blob nobody gave the action ${sandbox}`);
    const digest = await uploadBlob(t.clients, blob);
    const blobPath = entryPath(join(t.dataDir, 'cas'), digest);
    // A small blob's file follows its acknowledgement once the puts pause for a second (store/logged-files.ts): attack the file itself.
    await vi.waitFor(() => expect(existsSync(blobPath)).toBe(true), { timeout: 5_000 });
    const targets = [join(secretDir, 'id_ed25519'), join(t.dataDir, 'http-token'), blobPath];
    const r = await run(targets.map((p) => `cat '${p}' >/dev/null 2>&1 && echo "READ ${p}"`).join('; ') + '; true');
    const read = r.stdout.split('\n').filter((l) => l.startsWith('READ '));
    expect(read).toEqual(sandboxed ? [] : targets.map((p) => `READ ${p}`));
  });

  it('cannot write the CAS or the action cache, nor anywhere outside its exec root and /tmp', async () => {
    const blob = Buffer.from(`a blob to corrupt ${sandbox}`);
    const digest = await uploadBlob(t.clients, blob);
    const blobPath = entryPath(join(t.dataDir, 'cas'), digest);
    await vi.waitFor(() => expect(existsSync(blobPath)).toBe(true), { timeout: 5_000 });
    const acFile = join(t.dataDir, 'ac', 'forged-entry');
    const outside = join(secretDir, 'planted');
    const r = await run(
      [
        `chmod u+w '${blobPath}' 2>/dev/null; echo corrupted > '${blobPath}' 2>/dev/null && echo WROTE cas`,
        `echo forged > '${acFile}' 2>/dev/null && echo WROTE ac`,
        `echo planted > '${outside}' 2>/dev/null && echo WROTE home`,
        `echo fine > /tmp/scratch && echo fine > in-exec-root && echo WROTE allowed`,
        'true',
      ].join('; '),
    );
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(sandboxed ? ['WROTE allowed'] : ['WROTE cas', 'WROTE ac', 'WROTE home', 'WROTE allowed']);
    if (sandboxed) {
      // Kiln still serves the bytes it was given.
      expect((await t.engine.store.readAll(digest)).toString()).toBe(blob.toString());
      expect(existsSync(acFile)).toBe(false);
    }
  });

  it('has no capabilities, even when Kiln runs as root: cannot mount, nor read /etc/shadow', async () => {
    const isRoot = process.getuid?.() === 0;
    const caps = await run("grep '^CapEff' /proc/self/status | awk '{print $2}'");
    expect(/^0+$/.test(caps.stdout.trim())).toBe(sandboxed || !isRoot);
    const shadow = await run("test -s /etc/shadow && head -c1 /etc/shadow >/dev/null 2>&1 && echo READ shadow; true");
    expect(shadow.stdout.includes('READ shadow')).toBe(!sandboxed && isRoot && existsSync('/etc/shadow'));
    if (sandboxed) {
      // Unsandboxed this would really remount the host's /usr: only tried in the sandbox.
      const mount = await run('mount -o remount,rw /usr 2>/dev/null && echo REMOUNTED; mount -t tmpfs none /tmp 2>/dev/null && echo MOUNTED; true');
      expect(mount.stdout).toBe('');
    }
  });

  it('cannot see a concurrently running action\'s exec root', async () => {
    const first = run('touch i-was-here; sleep 4');
    // Long enough for the first action to be staged and running (2 slots).
    // Sandboxed as root, the exec roots are in the build folder outside the data folder (build-folder.ts).
    const roots = sandboxed && process.getuid?.() === 0 ? buildFolderPath(t.dataDir, 0) : join(t.dataDir, 'build');
    const second = await run(`sleep 1.5; ls -a '${roots}' | grep -v '^\\.' | wc -l; ls -R '${roots}' 2>/dev/null | grep -c i-was-here`);
    await first;
    const [seen, marker] = second.stdout.trim().split('\n').map(Number);
    // In a sandbox of its own only its own exec root is there (1); in its slot's sandbox the build folder
    // is there whole but 0711, so listing it shows nothing (0), and the other exec root (another uid's, 0700) stays shut.
    if (sandboxed) {
      expect(marker).toBe(0);
      expect(seen).toBeLessThanOrEqual(1);
    } else expect({ seen, marker }).toEqual({ seen: 2, marker: 1 });
  });

  describe('network', () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      server = createServer((s) => s.end('hello from the host\n'));
      port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    const connect = () => `exec 3<>/dev/tcp/127.0.0.1/${port} && head -n1 <&3`;

    it('cannot connect to a listener on 127.0.0.1 unless it asks for network=on', async () => {
      const off = await run(connect());
      expect(off.stdout.includes('hello from the host')).toBe(!sandboxed);
      const on = await run(connect(), { platform: { network: 'on' } });
      expect(on.stdout).toContain('hello from the host');
    });
  });

  it('leaves no process behind, even one that left its process group (setsid)', async () => {
    const marker = `1000.${process.pid}${Date.now() % 100000}${sandbox === 'on' ? 1 : 2}`;
    // The pause lets the child leave the process group before the action ends (as an attacker would).
    // It also closes fd 3, the marker the unsandboxed launcher sweeps for (engine/worker/process-markers.ts):
    // an attacker who knows of it escapes that sweep, but not the sandbox's PID namespace.
    const r = await run(`setsid sleep ${marker} 3>&- </dev/null >/dev/null 2>&1 & sleep 0.5; echo started`);
    expect(r.stdout).toContain('started');
    const survivors = pgrep(`sleep ${marker}`);
    for (const pid of survivors) process.kill(pid, 'SIGKILL');
    expect(survivors.length > 0).toBe(!sandboxed);
  });

  it('is killed at its timeout when it traps SIGTERM, with everything it started', async () => {
    const marker = `1000.${process.pid}${Date.now() % 100000}${sandbox === 'on' ? 3 : 4}`;
    const started = Date.now();
    // Closing fd 3 escapes the unsandboxed launcher's marker sweep, as above.
    const r = await run(`trap '' TERM; setsid bash -c "trap '' TERM; sleep ${marker}" 3>&- </dev/null >/dev/null 2>&1 & sleep 60`, { timeoutMs: 1000 });
    expect(r.code).toBe(4); // DEADLINE_EXCEEDED
    expect(Date.now() - started).toBeLessThan(30_000);
    await new Promise((res) => setTimeout(res, 500));
    const survivors = pgrep(`sleep ${marker}`);
    for (const pid of survivors) process.kill(pid, 'SIGKILL');
    expect(survivors.length > 0).toBe(!sandboxed);
  });

  it('fails cleanly over its memory limit while the engine keeps serving', async () => {
    // dd allocates (and fills) one 300 MiB block.
    const r = await run('dd if=/dev/zero of=/dev/null bs=300M count=1 2>/dev/null && echo allocated', { platform: { memory: '64MiB' } });
    if (sandboxed) {
      expect(r.code).toBe(0); // The action's own failure, not Kiln's.
      expect(r.exitCode).toBe(137);
      expect(r.stderr).toMatch(/went over its memory limit of 64 MiB/);
    } else {
      expect(r.stdout).toContain('allocated');
    }
    const after = await run('echo still serving');
    expect(after.stdout).toBe('still serving\n');
  });

  it('is held to the configured memory limit when its platform names none', async () => {
    const r = await run('dd if=/dev/zero of=/dev/null bs=300M count=1 2>/dev/null && echo allocated');
    if (sandboxed) expect({ exitCode: r.exitCode, stderr: r.stderr }).toMatchObject({ exitCode: 137, stderr: expect.stringMatching(/memory limit of 128 MiB/) });
    else expect(r.stdout).toContain('allocated');
  });

  it('cannot start more processes than the configured action-processes (a fork bomb stops there)', async () => {
    const forks = [
      'import os, time',
      'n = 0',
      'for i in range(100):',
      '    try:',
      '        pid = os.fork()',
      '    except OSError:',
      '        break',
      '    if pid == 0:',
      '        time.sleep(2)',
      '        os._exit(0)',
      '    n += 1',
      'print(n)',
    ].join('\n');
    const r = await run(`/usr/bin/python3 -c '${forks}'`);
    const started = Number(r.stdout.trim());
    if (sandboxed) expect(started).toBeLessThan(40);
    else expect(started).toBe(100);
  });

  it('reports the sandbox in /api/status', async () => {
    const res = await fetch(`${t.engine.httpUrl}api/status`, { headers: { authorization: `Bearer ${t.engine.httpToken}` } });
    const status = (await res.json()) as { sandbox?: { enabled: boolean; mode: string; runner?: string; reason: string } };
    expect(status.sandbox).toMatchObject({ enabled: sandboxed, mode: sandbox });
    expect(status.sandbox?.reason).toMatch(/\S/);
    if (sandboxed) expect(status.sandbox?.runner).toBe('bubblewrap');
  });
});

/** Host pids whose command line contains `pattern` (not this test's own pgrep). */
function pgrep(pattern: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // exit 1: none
  }
}
