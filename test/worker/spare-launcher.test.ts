// The spare launcher: a run that would wait behind another's spawn may start from a
// second launcher, so two spawns (each blocks its launcher for the whole fork + exec)
// can proceed at once; runs that merely overlap stay on the main one.
// Which launcher started an action shows as the action's parent pid.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { FileLogSink } from '../../engine/execution/log-sink';
import type { RunExit } from '../../engine/execution/runner';
import { ProcessRunner } from '../../engine/worker/process-runner';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The run printed its first line. */
const readable = (out: () => string) => {
  try {
    return out() !== '';
  } catch {
    return false;
  }
};

describe.skipIf(process.platform === 'win32')(`ProcessRunner: the spare launcher${process.platform === 'win32' ? ' (skipped: the launcher starts POSIX process groups)' : ''}`, () => {
  let root: string;
  let runner: ProcessRunner | undefined;
  let seq = 0;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'kiln-spare-'));
  });
  afterEach(async () => {
    await runner?.close();
    runner = undefined;
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** Runs `script` under /bin/sh; resolves with its exit and a reader of its stdout. */
  function run(r: ProcessRunner, script: string): { id: string; exit: Promise<RunExit>; out: () => string } {
    const id = `a-${++seq}`;
    const execRoot = join(root, id);
    mkdirSync(execRoot, { recursive: true });
    const out = join(root, `${id}.out`);
    const exit = r.run({
      id,
      argv: ['/bin/sh', '-c', script],
      env: {},
      execRoot,
      workingDirectory: '',
      stdout: new FileLogSink(out),
      stderr: new FileLogSink(join(root, `${id}.err`)),
      timeoutMs: 0,
    });
    // Runs killed and never awaited can still be pending when afterEach closes the runner, which
    // then rejects them (launcher exited): that is expected here, not an unhandled failure.
    exit.catch(() => {});
    return { id, exit, out: () => readFileSync(out, 'utf8').trim() };
  }

  it('starts runs that do not overlap from the one launcher, and no spare', async () => {
    runner = new ProcessRunner(undefined, { spareLauncher: true });
    for (let i = 0; i < 3; i++) {
      const a = run(runner, 'echo $PPID');
      expect((await a.exit).exitCode).toBe(0);
      expect(Number(a.out())).toBe(runner.launcherPid);
    }
    expect(runner.spareLauncherPid).toBeUndefined();
  });

  it('keeps runs that merely overlap on the main launcher: a running action does not block it', async () => {
    runner = new ProcessRunner(undefined, { spareLauncher: true });
    const long = run(runner, 'echo $PPID; exec sleep 60');
    // Long started (its output is there, and the launcher said so just before): the main launcher is idle again.
    for (let i = 0; i < 100 && !readable(long.out); i++) await sleep(50);
    await sleep(1000);
    const a = run(runner, 'echo $PPID');
    expect((await a.exit).exitCode).toBe(0);
    expect(Number(a.out())).toBe(runner.launcherPid);
    expect(runner.spareLauncherPid).toBeUndefined();
    runner.kill(long.id);
    expect((await long.exit).killed).toBe(true);
  }, 30_000);

  it('starts a run that would wait behind a spawn from the spare launcher once it is ready; a kill reaches a run on either', async () => {
    runner = new ProcessRunner(undefined, { spareLauncher: true });
    const long = run(runner, 'echo $PPID; exec sleep 60');
    const parents = new Set<number>();
    // Runs sent together wait behind each other's spawns: the spare starts then, and takes runs once it
    // said it is ready (a Node start: give it time).
    for (let i = 0; i < 100 && !parents.has(runner.spareLauncherPid ?? -1); i++) {
      const burst = [1, 2, 3, 4].map(() => run(runner!, 'echo $PPID'));
      for (const b of burst) {
        expect((await b.exit).exitCode).toBe(0);
        parents.add(Number(b.out()));
      }
      if (!parents.has(runner.spareLauncherPid ?? -1)) await sleep(100);
    }
    expect(runner.spareLauncherPid).toBeDefined();
    expect(runner.spareLauncherPid).not.toBe(runner.launcherPid);
    expect([...parents].sort()).toEqual([runner.launcherPid, runner.spareLauncherPid].sort());
    // The long run is on the main launcher; one on the spare is killed just as well.
    let onSpare: ReturnType<typeof run> | undefined;
    for (let i = 0; i < 100 && !onSpare; i++) {
      const burst = [1, 2, 3, 4].map(() => run(runner!, 'echo $PPID; exec sleep 60'));
      for (const b of burst) {
        for (let j = 0; j < 100 && !readable(b.out); j++) await sleep(50);
        if (!onSpare && Number(b.out()) === runner.spareLauncherPid) onSpare = b;
        else runner.kill(b.id);
      }
    }
    expect(onSpare).toBeDefined();
    runner.kill(onSpare!.id);
    runner.kill(long.id);
    expect((await onSpare!.exit).killed).toBe(true);
    expect((await long.exit).killed).toBe(true);
    expect(Number(long.out())).toBe(runner.launcherPid);
  }, 60_000);

  it('never starts a spare when told not to', async () => {
    runner = new ProcessRunner(undefined, { spareLauncher: false });
    const long = run(runner, 'exec sleep 60');
    for (let i = 0; i < 3; i++) {
      const a = run(runner, 'echo $PPID');
      await a.exit;
      expect(Number(a.out())).toBe(runner.launcherPid);
    }
    runner.kill(long.id);
    await long.exit;
    expect(runner.spareLauncherPid).toBeUndefined();
  });
});
