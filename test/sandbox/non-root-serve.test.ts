// A real non-root Kiln: `kiln serve` started as nobody (setpriv) on a data
// folder nobody owns, sent real actions, checked against what the README
// promises for that case: actions run as Kiln's own user; hard-linked inputs
// are read-only; an action that chmods and rewrites one anyway has the blob
// dropped from the CAS; and with the sandbox on (bubblewrap in an
// unprivileged user namespace) the data folder is not visible, while with it
// off it is (the control); the default, sandbox auto, sandboxes it too
// wherever bubblewrap works, a bwrap per action (Kiln is not root). Dropping to nobody needs root, so without root the
// whole file is skipped.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';
import { entryPath } from '../../engine/store/cas-layout';
import { uploadBlob } from '../helpers/blobs';
import { connectClients, type KilnClients } from '../helpers/clients';
import { executeRequest, responseOf, uploadAction, type ActionSpec } from '../execution/harness';

const ROOT = join(__dirname, '..', '..');
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const hasSetpriv = isRoot && spawnSync('setpriv', ['--version']).status === 0;
const skipAll = !isRoot ? 'dropping to an unprivileged user needs root' : !hasSetpriv ? 'setpriv (util-linux) is not installed' : '';
const probe = isRoot ? probeBubblewrap({ dataDir: '/nonexistent-kiln', runAs: { uid: NOBODY, gid: NOBODY, label: 'nobody' } }) : undefined;
const noSandbox = !probe?.available ? (probe && !probe.available ? probe.reason : 'not root') : '';

describe.skipIf(!!skipAll).each([
  { sandbox: 'off', skip: '' },
  { sandbox: 'on', skip: noSandbox },
  { sandbox: 'auto', skip: noSandbox },
])(`kiln serve as nobody, sandbox $sandbox${skipAll ? ` (skipped: ${skipAll})` : ''}`, ({ sandbox, skip }) => {
  let dataDir: string;
  let child: ChildProcess | undefined;
  let clients: KilnClients;
  let log = '';
  let seq = 0;

  beforeAll(async () => {
    if (skip) return;
    dataDir = mkdtempSync(join(tmpdir(), 'kiln-nonroot-'));
    chownSync(dataDir, NOBODY, NOBODY);
    chmodSync(dataDir, 0o700);
    child = spawn(
      'setpriv',
      ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, '--import', 'tsx', join(ROOT, 'engine', 'cli.ts'), 'serve',
        '--port', '0', '--http-port', '0', '--data-dir', dataDir, '--sandbox', sandbox, '--concurrency', '2'],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dataDir, TMPDIR: tmpdir() }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stderr!.on('data', (b) => (log += b));
    const address = await new Promise<string>((resolve, reject) => {
      let out = '';
      child!.stdout!.on('data', (b) => {
        out += b;
        log += b;
        const m = /kiln listening (grpc:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child!.once('exit', (code) => reject(new Error(`kiln serve exited ${code}: ${log}`)));
    });
    clients = connectClients(address);
  }, 120_000);

  afterAll(async () => {
    clients?.close();
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  async function run(script: string, over: Partial<ActionSpec> = {}) {
    const digest = await uploadAction(clients, { argv: ['/bin/sh', '-c', script], doNotCache: true, salt: `nonroot-${sandbox}-${++seq}`, ...over });
    const ops = await clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true, inlineStderr: true }));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code ?? 0).toBe(0);
    return Buffer.from(response.result?.stdoutRaw ?? []).toString().split('\n').filter(Boolean);
  }

  it.skipIf(!!skip)(`runs actions as Kiln's own user, and says so at start${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    expect(await run('id -u')).toEqual([String(NOBODY)]);
    expect(log).toMatch(/actions run as Kiln's own user: Kiln is not root/);
  });

  it.skipIf(!!skip)(`hands out hard-linked inputs read-only, and drops a blob an action rewrites anyway${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const content = `an input nobody should change ${sandbox}`;
    const digest = await uploadBlob(clients, Buffer.from(content));
    const blobPath = entryPath(join(dataDir, 'cas'), digest);
    expect(existsSync(blobPath)).toBe(true);
    const out = await run('stat -c %a:%h in.txt; echo more >> in.txt 2>/dev/null && echo WROTE-READONLY; chmod u+w in.txt && echo changed >> in.txt && echo REWROTE; true', {
      inputs: { 'in.txt': content },
    });
    // Read-only (0444) and a hard link (two names: the CAS's and the exec root's).
    expect(out).toEqual(['444:2', 'REWROTE']);
    // The check after the run found the change and dropped the blob.
    expect(existsSync(blobPath)).toBe(false);
    expect(log).toMatch(/modified hard-linked input in\.txt; dropped/);
  });

  it.skipIf(!!skip)(`${sandbox !== 'off' ? 'hides' : 'does not hide'} Kiln's data folder from the action${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const out = await run(`cat '${join(dataDir, 'http-token')}' >/dev/null 2>&1 && echo READ token; ls '${join(dataDir, 'cas')}' >/dev/null 2>&1 && echo LISTED cas; true`);
    expect(out).toEqual(sandbox !== 'off' ? [] : ['READ token', 'LISTED cas']);
  });

  it.skipIf(!!skip || sandbox !== 'auto')(`says at start that auto sandboxes here, and how${skip ? ` (skipped: ${skip})` : sandbox !== 'auto' ? ' (skipped: only the auto row)' : ''}`, () => {
    expect(log).toMatch(/kiln: sandbox on \(bubblewrap; limits: .*\): sandbox: auto, and bubblewrap works here; each action gets a sandbox of its own \(none made ahead per slot: Kiln is not root/);
  });
});
