// A real non-root Kiln given cgroups it may write (cgroup v1 folders handed to
// nobody, as an admin may delegate them on a desk): its actions run in
// unprivileged slots all the same, kiln-nest joining each action's cgroups
// before its namespaces (a cgroup namespace among them), so the limits hold and
// the action sees neither the cgroup folders nor its place among them. Before,
// cgroup limits switched a non-root Kiln's slots off. Needs root (to hand the
// folders over and drop to nobody) and cgroup v1's memory hierarchy; this
// machine has no cgroup v2 with controllers, so that path is not run here.
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';
import { findNestHelper } from '../../engine/sandbox/nest-helper';
import type { KilnClients } from '../helpers/clients';
import { NOBODY, serveAsNobody, type NobodyServe } from './serve-as-nobody';
import { executeRequest, responseOf, uploadAction } from '../execution/harness';

const CGROUPS = '/sys/fs/cgroup';
const isRoot = process.getuid?.() === 0;
const skip = !isRoot
  ? 'handing cgroups to nobody needs root'
  : spawnSync('setpriv', ['--version']).status !== 0
    ? 'setpriv (util-linux) is not installed'
    : !existsSync(join(CGROUPS, 'memory', 'cgroup.procs')) || !existsSync(join(CGROUPS, 'pids', 'cgroup.procs'))
      ? 'no cgroup v1 memory and pids hierarchies here'
      : (() => {
          const probe = probeBubblewrap({ dataDir: '/nonexistent-kiln', runAs: { uid: NOBODY, gid: NOBODY, label: 'nobody' } });
          if (!probe.available) return probe.reason;
          const nest = findNestHelper();
          return nest.why ? `no non-root slots: ${nest.why}` : '';
        })();

/** Removes a cgroup v1 folder and what Kiln left below it, deepest first (rmdir is how cgroups go). */
function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const child = join(dir, name);
    if (statSync(child).isDirectory()) removeCgroup(child);
  }
  rmdirSync(dir);
}

describe.skipIf(!!skip)(`kiln serve as nobody, with cgroup v1 folders of its own${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const desk = `kiln-test-desk-${process.pid}`;
  const folders = ['memory', 'pids'].map((h) => join(CGROUPS, h, desk));
  let serve: NobodyServe | undefined;
  let clients: KilnClients;
  let seq = 0;

  beforeAll(async () => {
    for (const dir of folders) {
      mkdirSync(dir);
      for (const name of ['', ...readdirSync(dir)]) chownSync(join(dir, name), NOBODY, NOBODY);
    }
    // Kiln starts inside the folders it was given, as under a delegating service manager.
    serve = await serveAsNobody({ prefix: 'kiln-nonroot-cg-', args: ['--concurrency', '1'], joinCgroups: folders });
    ({ clients } = serve);
  }, 120_000);

  afterAll(async () => {
    await serve?.stop();
    for (const dir of folders) removeCgroup(dir);
  }, 60_000);

  async function run(script: string, platform: Record<string, string> = {}) {
    const digest = await uploadAction(clients, { argv: ['/bin/sh', '-c', script], doNotCache: true, salt: `nonroot-cg-${++seq}`, platform });
    const ops = await clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true, inlineStderr: true }));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code ?? 0).toBe(0);
    return {
      exitCode: response.result?.exitCode ?? 0,
      stdout: Buffer.from(response.result?.stdoutRaw ?? []).toString().split('\n').filter(Boolean),
      stderr: Buffer.from(response.result?.stderrRaw ?? []).toString(),
    };
  }

  it('runs its actions in slots with the cgroup limits, and says so at start', () => {
    expect(serve!.log()).toMatch(/kiln: sandbox on \(bubblewrap; limits: cgroup v1: memory, pids\): sandbox: auto, and bubblewrap works here; each action runs in a sandbox made ahead for its slot \(Kiln is not root: an unprivileged one\)/);
  });

  it('keeps an action over its memory limit inside it: the kernel kills it there, and Kiln says why', async () => {
    // dd's one 300 MiB block is one buffer in memory.
    const r = await run('dd if=/dev/zero of=/dev/null bs=300M count=1 2>/dev/null && echo survived', { memory: '64MiB' });
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).toEqual([]);
    expect(r.stderr).toMatch(/kiln: the action went over its memory limit of 64 MiB and the kernel killed it/);
    // The slot is still there for the next action.
    expect((await run('echo next')).stdout).toEqual(['next']);
  });

  it('shows the action its cgroup as its root and no cgroup folder to move itself through', async () => {
    const r = await run("grep -E ':(memory|pids):' /proc/self/cgroup; ls /sys/fs/cgroup 2>/dev/null | head -1; ls -A /run/kiln 2>/dev/null | head -1; ps -e -o comm= | grep -c kiln-nest");
    expect(r.stdout.slice(0, 2).sort()).toEqual([expect.stringMatching(/^\d+:memory:\/$/), expect.stringMatching(/^\d+:pids:\/$/)].sort());
    // Nothing of /sys, nothing in the agent's folder (covered), and kiln-nest as the namespace's init.
    expect(r.stdout.slice(2)).toEqual(['1']);
  });
});
