// kiln-nest itself (engine/sandbox/native/kiln-nest.c), built as `npm run build` builds it.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findNestHelper } from '../../engine/sandbox/nest-helper';
import { agentWorkingFolder } from '../../engine/sandbox/slot-sandboxes';
import { packageRoot } from '../../engine/util/package-root';

const nest = process.platform === 'linux' ? findNestHelper() : { why: 'kiln-nest is Linux only' };
const why = nest.path ? '' : ` (skipped: ${nest.why})`;

describe.skipIf(!nest.path)(`kiln-nest${why}`, () => {
  it('refuses more folders to hide than it can cover, rather than leave one in sight', () => {
    const hide = Array.from({ length: 17 }, (_, i) => ['--hide', `/nonexistent-kiln/${i}`]).flat();
    const r = spawnSync(nest.path!, [...hide, '--keep', '/nonexistent-kiln/x', '--', '/bin/true'], { encoding: 'utf8' });
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/more than 16 --hide folders/);
  });

  // As nobody, as on a desk, with 100 more of nobody's processes running outside: a limit set before the
  // action's user namespace would count those too (README), kiln-nest's counts only the action's own.
  it.skipIf(process.getuid?.() !== 0)(`limits the action to --nproc processes, counted in its own user namespace only (as nobody)${process.getuid?.() !== 0 ? ' (skipped: dropping to nobody needs root)' : ''}`, async () => {
    const dir = mkdtempSync(join('/var/tmp', 'kiln-nproc-'));
    const others = spawn('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', '/bin/sh', '-c', 'i=0; while [ $i -lt 100 ]; do sleep 20 & i=$((i+1)); done; echo up; wait'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    try {
      await new Promise((resolve) => others.stdout!.once('data', resolve));
      chmodSync(dir, 0o777);
      const helper = join(dir, 'kiln-nest');
      copyFileSync(nest.path!, helper);
      chmodSync(helper, 0o755);
      // Forks up to 60 sleeps, writing how many it got; the shell gives up at the first fork refused.
      const forks = 'i=0; while [ $i -lt 60 ]; do sleep 5 & i=$((i+1)); echo $i > count; done';
      const run = (limit: string[]) => {
        rmSync(join(dir, 'count'), { force: true });
        const r = spawnSync('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', helper, ...limit, '--keep', dir, '--', '/bin/sh', '-c', forks], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
        return { status: r.status, stderr: r.stderr, count: Number(readFileSync(join(dir, 'count'), 'utf8')) };
      };
      const unlimited = run([]);
      expect(unlimited).toMatchObject({ status: 0, count: 60 });
      // The shell itself is one of the 20: it gets 19 sleeps, then fork fails (EAGAIN).
      const limited = run(['--nproc', '20']);
      expect(limited.count).toBe(19);
      expect(limited.status).not.toBe(0);
      expect(limited.stderr).toMatch(/Cannot fork/);
      expect(spawnSync(helper, ['--nproc', '0', '--keep', dir, '--', '/bin/true'], { encoding: 'utf8' }).stderr).toMatch(/--nproc 0 is not a number of processes/);
    } finally {
      if (others.pid) process.kill(-others.pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Not a cgroup: kiln-nest adds up the resident memory of every process in the action's PID namespace.
  it('kills an action whose processes together go over --memory, with a line in its stderr; one under it runs', () => {
    const dir = mkdtempSync(join('/var/tmp', 'kiln-memory-'));
    try {
      const limit = String(64 * 1024 * 1024);
      // Two children of the shell, 40 MiB each (dd's one block is one buffer), held for 3 s: 80 MiB together.
      const two = 'dd if=/dev/zero bs=40M count=1 2>/dev/null | sleep 3 & dd if=/dev/zero bs=40M count=1 2>/dev/null | sleep 3 & wait; echo survived';
      const started = Date.now();
      const over = spawnSync(nest.path!, ['--memory', limit, '--keep', dir, '--', '/bin/sh', '-c', two], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
      expect(over.stdout).toBe('');
      expect(over.signal).toBe('SIGKILL');
      expect(over.stderr).toMatch(/^kiln: the action went over its memory limit of 64 MiB and Kiln killed it; ask for more with the platform property memory/);
      expect(Date.now() - started).toBeLessThan(2500); // killed while the sleeps hold it, not when they end
      const one = spawnSync(nest.path!, ['--memory', limit, '--keep', dir, '--', '/bin/sh', '-c', 'dd if=/dev/zero bs=40M count=1 2>/dev/null | sleep 1; echo fits; cat /proc/self/oom_score_adj'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
      expect({ status: one.status, stdout: one.stdout }).toEqual({ status: 0, stdout: 'fits\n1000\n' });
      expect(spawnSync(nest.path!, ['--memory', '12k', '--keep', dir, '--', '/bin/true'], { encoding: 'utf8' }).stderr).toMatch(/--memory 12k is not a number of bytes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a call without the exec root to keep', () => {
    const r = spawnSync(nest.path!, ['--hide', '/nonexistent-kiln', '--', '/bin/true'], { encoding: 'utf8' });
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/usage: kiln-nest/);
  });
});

// A packaged app as Electron's fs shows it: app.asar reads as a folder (a stand-in folder here)
// that lists dist/native/kiln-nest, while only the copy in app.asar.unpacked can be exec'd.
describe('kiln-nest in a packaged app (a stand-in app.asar layout)', () => {
  let resources: string;
  beforeEach(() => {
    resources = mkdtempSync(join(tmpdir(), 'kiln-packaged-'));
    const asar = join(resources, 'app.asar');
    mkdirSync(join(asar, 'dist', 'native'), { recursive: true });
    mkdirSync(join(asar, 'dist', 'engine', 'sandbox'), { recursive: true });
    writeFileSync(join(asar, 'package.json'), '{"name":"kiln"}');
    writeFileSync(join(asar, 'dist', 'native', 'kiln-nest'), 'listed in the archive, not runnable', { mode: 0o755 });
  });
  afterEach(() => rmSync(resources, { recursive: true, force: true }));

  it('finds the package root at app.asar and takes the unpacked copy beside it', () => {
    const unpacked = join(resources, 'app.asar.unpacked', 'dist', 'native', 'kiln-nest');
    mkdirSync(dirname(unpacked), { recursive: true });
    writeFileSync(unpacked, '#!/bin/sh\n', { mode: 0o755 });
    const root = packageRoot(join(resources, 'app.asar', 'dist', 'engine', 'sandbox'));
    expect(root).toBe(join(resources, 'app.asar'));
    expect(findNestHelper({ root })).toEqual({ path: unpacked });
  });

  it('says the package lacks it, and never tries to compile it there', () => {
    const found = findNestHelper({ root: join(resources, 'app.asar') });
    expect(found).toEqual({ why: `its helper ${join(resources, 'app.asar.unpacked', 'dist', 'native', 'kiln-nest')} is not in this package (it was built without it unpacked)` });
    expect(existsSync(join(resources, 'app.asar.unpacked'))).toBe(false);
    expect(readdirSync(join(resources, 'app.asar', 'dist', 'native'))).toEqual(['kiln-nest']);
  });

  it('says so when the unpacked copy lost its exec bit', () => {
    const unpacked = join(resources, 'app.asar.unpacked', 'dist', 'native', 'kiln-nest');
    mkdirSync(dirname(unpacked), { recursive: true });
    writeFileSync(unpacked, '#!/bin/sh\n', { mode: 0o644 });
    // Root passes X_OK checks only where some exec bit is set, so this holds as root too.
    expect(findNestHelper({ root: join(resources, 'app.asar') }).why).toMatch(/kiln-nest cannot be run \(EACCES\)$/);
  });

  it("gives a slot's agent the folder holding app.asar to work in, not the archive", () => {
    expect(agentWorkingFolder(join(resources, 'app.asar'))).toBe(resources);
    expect(agentWorkingFolder('/work/kiln')).toBe('/work/kiln');
  });
});
