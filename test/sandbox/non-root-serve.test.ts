// A real non-root Kiln: `kiln serve` started as nobody (setpriv) on a data
// folder nobody owns, sent real actions, checked against what the README
// promises for that case: actions run as Kiln's own user; hard-linked inputs
// are read-only; an action that chmods and rewrites one anyway has the blob
// dropped from the CAS; and with the sandbox on (bubblewrap in an
// unprivileged user namespace) the data folder is not visible, while with it
// off it is (the control); the default, sandbox auto, sandboxes it too
// wherever bubblewrap works, in unprivileged slots (kiln-nest per action). Dropping to nobody needs root, so without root the
// whole file is skipped.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';
import { findNestHelper } from '../../engine/sandbox/nest-helper';
import { entryPath } from '../../engine/store/cas-layout';
import { uploadBlob } from '../helpers/blobs';
import type { KilnClients } from '../helpers/clients';
import { NOBODY, serveAsNobody, type NobodyServe } from './serve-as-nobody';
import { executeRequest, responseOf, uploadAction, type ActionSpec } from '../execution/harness';

const ROOT = join(__dirname, '..', '..');
const isRoot = process.getuid?.() === 0;
const hasSetpriv = isRoot && spawnSync('setpriv', ['--version']).status === 0;
const skipAll = !isRoot ? 'dropping to an unprivileged user needs root' : !hasSetpriv ? 'setpriv (util-linux) is not installed' : '';
const probe = isRoot ? probeBubblewrap({ dataDir: '/nonexistent-kiln', runAs: { uid: NOBODY, gid: NOBODY, label: 'nobody' } }) : undefined;
const noSandbox = !probe?.available ? (probe && !probe.available ? probe.reason : 'not root') : '';
// kiln-nest is built by `npm run build`; a fresh clone's `npm test` comes first, and nobody cannot write dist/: build it here, as root.
const nest = isRoot && !noSandbox ? findNestHelper() : undefined;
const noSlots = noSandbox || (nest?.why ? `no non-root slots: ${nest.why}` : '');

describe.skipIf(!!skipAll).each([
  { sandbox: 'off', skip: '' },
  { sandbox: 'on', skip: noSandbox },
  { sandbox: 'auto', skip: noSandbox },
])(`kiln serve as nobody, sandbox $sandbox${skipAll ? ` (skipped: ${skipAll})` : ''}`, ({ sandbox, skip }) => {
  let serve: NobodyServe | undefined;
  let dataDir: string;
  let clients: KilnClients;
  let seq = 0;

  beforeAll(async () => {
    if (skip) return;
    serve = await serveAsNobody({ prefix: 'kiln-nonroot-', args: ['--sandbox', sandbox, '--concurrency', '2'] });
    ({ dataDir, clients } = serve);
  }, 120_000);

  afterAll(async () => {
    await serve?.stop();
  }, 60_000);

  async function run(script: string, over: Partial<ActionSpec> = {}) {
    return (await runWhole(script, over)).stdout;
  }

  async function runWhole(script: string, over: Partial<ActionSpec> = {}) {
    const digest = await uploadAction(clients, { argv: ['/bin/sh', '-c', script], doNotCache: true, salt: `nonroot-${sandbox}-${++seq}`, ...over });
    const ops = await clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true, inlineStderr: true }));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code ?? 0).toBe(0);
    return {
      exitCode: response.result?.exitCode ?? 0,
      stdout: Buffer.from(response.result?.stdoutRaw ?? []).toString().split('\n').filter(Boolean),
      stderr: Buffer.from(response.result?.stderrRaw ?? []).toString(),
    };
  }

  it.skipIf(!!skip)(`runs actions as Kiln's own user, and says so at start${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    expect(await run('id -u')).toEqual([String(NOBODY)]);
    expect(serve!.log()).toMatch(/actions run as Kiln's own user: Kiln is not root/);
  });

  it.skipIf(!!skip)(`hands out hard-linked inputs read-only, and drops a blob an action rewrites anyway${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const content = `an input nobody should change ${sandbox}`;
    const digest = await uploadBlob(clients, Buffer.from(content));
    const blobPath = entryPath(join(dataDir, 'cas'), digest);
    // A small blob's file follows its acknowledgement once the puts pause for a second (store/logged-files.ts).
    await vi.waitFor(() => expect(existsSync(blobPath)).toBe(true), { timeout: 5_000 });
    const out = await run('stat -c %a:%h in.txt; echo more >> in.txt 2>/dev/null && echo WROTE-READONLY; chmod u+w in.txt && echo changed >> in.txt && echo REWROTE; true', {
      inputs: { 'in.txt': content },
    });
    // Read-only (0444) and a hard link (two names: the CAS's and the exec root's).
    expect(out).toEqual(['444:2', 'REWROTE']);
    // The check after the run found the change and dropped the blob.
    expect(existsSync(blobPath)).toBe(false);
    expect(serve!.log()).toMatch(/modified hard-linked input in\.txt; dropped/);
  });

  it.skipIf(!!skip)(`${sandbox !== 'off' ? 'hides' : 'does not hide'} Kiln's data folder from the action${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const out = await run(`cat '${join(dataDir, 'http-token')}' >/dev/null 2>&1 && echo READ token; ls '${join(dataDir, 'cas')}' >/dev/null 2>&1 && echo LISTED cas; true`);
    expect(out).toEqual(sandbox !== 'off' ? [] : ['READ token', 'LISTED cas']);
  });

  it.skipIf(!!skip || !!noSlots || sandbox !== 'auto')(`says at start that auto sandboxes here, and how${skip || noSlots ? ` (skipped: ${skip || noSlots})` : sandbox !== 'auto' ? ' (skipped: only the auto row)' : ''}`, () => {
    expect(serve!.log()).toMatch(/kiln: sandbox on \(bubblewrap; limits: .*\): sandbox: auto, and bubblewrap works here; each action runs in a sandbox made ahead for its slot \(Kiln is not root: an unprivileged one\), in user, mount, PID and IPC namespaces of its own/);
  });

  // The non-root slot's own attacks: actions share Kiln's uid, so only kiln-nest's namespaces keep them apart.
  const sandboxed = sandbox !== 'off';
  const offRow = sandboxed ? '' : ' (skipped: the sandbox-off row has no slot; the sandboxed rows check this)';
  it.skipIf(!!skip || !!noSlots || !sandboxed)(`runs actions in the slot's sandbox, out of reach of the agent and of Kiln's code${skip || noSlots ? ` (skipped: ${skip || noSlots})` : offRow}`, async () => {
    const out = await run(`ps -e -o comm= | sort | tr '\\n' ' '; echo; ls /run/kiln 2>&1 | head -1; ls '${ROOT}/engine' >/dev/null 2>&1 && echo SEES code; cd .. && ls | wc -l; grep CapEff /proc/self/status`);
    // Only its own processes (kiln-nest as its PID 1, the shell, ps): no agent, no node.
    expect(out[0]).not.toMatch(/node|bwrap|launcher/);
    expect(out[0]).toMatch(/kiln-nest/);
    expect(out).not.toContain('SEES code');
    expect(out).toContain('1'); // the build folder holds only its own exec root
    expect(out).toContain('CapEff:\t0000000000000000');
  });

  it.skipIf(!!skip)(`${sandboxed ? 'keeps' : 'does not keep'} a concurrent action's exec root out of sight${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const marker = `concurrent-${sandbox}-${Date.now()}`;
    const holder = run(`echo ${marker} > held.txt; sleep 3; true`);
    await new Promise((r) => setTimeout(r, 1500));
    const out = await run(`cat ../*/held.txt 2>/dev/null; cat '${join(dataDir, 'build')}'/*/held.txt 2>/dev/null; true`);
    await holder;
    expect(out.includes(marker)).toBe(!sandboxed);
  });

  it.skipIf(!!skip || !sandboxed)(`has no network, and leaves nothing behind in its slot${skip ? ` (skipped: ${skip})` : offRow}`, async () => {
    const net = await run(`(exec 3<>/dev/tcp/127.0.0.1/${22}) 2>/dev/null && echo NET; bash -c 'echo > /dev/tcp/1.1.1.1/80' 2>/dev/null && echo NET; ip -o link 2>/dev/null | grep -c UP; true`, {});
    expect(net).not.toContain('NET');
    // A daemon and a /tmp file from one action; none of them in the next (two slots: run enough to reuse one).
    const tag = `left-${sandbox}-${Date.now()}`;
    for (let i = 0; i < 3; i++) {
      await run(`setsid sh -c 'exec -a ${tag} sleep 300' </dev/null >/dev/null 2>&1 & echo x > /tmp/${tag}-${i}; true`);
    }
    const after = await run(`ls /tmp; ps -e -o args=; true`);
    expect(after.join('\n')).not.toContain(tag);
    const host = spawnSync('pgrep', ['-f', tag], { encoding: 'utf8' });
    expect(host.stdout.trim()).toBe('');
  });

  // No cgroup here (cgroup v1 is not nobody's to write): kiln-nest watches the action's memory instead, in a
  // slot and around an action with a sandbox of its own (network=on never goes into a slot).
  it.skipIf(!!skip || !!noSlots || !sandboxed)(`stops an action over its memory limit without a cgroup, in a slot or not, and says why${skip || noSlots ? ` (skipped: ${skip || noSlots})` : offRow}`, async () => {
    for (const platform of [{ memory: '64MiB' }, { memory: '64MiB', network: 'on' }]) {
      // dd's one 300 MiB block is one buffer in memory.
      const r = await runWhole('dd if=/dev/zero of=/dev/null bs=300M count=1 2>/dev/null && echo survived', { platform });
      expect(r.stdout).toEqual([]);
      expect(r.exitCode).toBe(137);
      expect(r.stderr).toMatch(/kiln: the action went over its memory limit of 64 MiB and Kiln killed it/);
    }
    // Under the limit, the same runs; and the kernel's OOM killer would take the action before Kiln.
    const fits = await runWhole('dd if=/dev/zero of=/dev/null bs=16M count=1 2>/dev/null && echo fits; cat /proc/self/oom_score_adj', { platform: { memory: '64MiB' } });
    expect(fits.stdout).toEqual(['fits', '1000']);
  });

  it.skipIf(!!skip || !sandboxed)(`times out an action that traps SIGTERM, and the slot runs the next${skip ? ` (skipped: ${skip})` : offRow}`, async () => {
    const digest = await uploadAction(clients, { argv: ['/bin/sh', '-c', "trap '' TERM; while :; do sleep 0.1; done"], doNotCache: true, salt: `nonroot-timeout-${sandbox}-${++seq}`, timeoutMs: 1000 });
    const started = Date.now();
    const ops = await clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true, inlineStderr: true }));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code).toBe(4); // DEADLINE_EXCEEDED
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(await run('echo next')).toEqual(['next']);
  });
});
