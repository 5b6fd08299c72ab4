// Pause, resume and signals of a real running action, and the background
// priority of polite mode, through the launcher-backed ProcessRunner.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileLogSink } from '../../engine/execution/log-sink';
import { PriorityRunner } from '../../engine/execution/priority-runner';
import type { RunExit, RunRequest } from '../../engine/execution/runner';
import { ProcessRunner } from '../../engine/worker/process-runner';

const linux = process.platform === 'linux';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** The launcher renices just after the spawn, so the action may print its pid first: wait for it, briefly. */
async function eventually(read: () => unknown, expected: unknown, ms = 5_000): Promise<unknown> {
  const deadline = Date.now() + ms;
  let value = read();
  while (value !== expected && Date.now() < deadline) {
    await sleep(20);
    value = read();
  }
  return value;
}

/** /proc/PID/stat's policy field (41st): 0 SCHED_OTHER, 5 SCHED_IDLE. */
function schedPolicyOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
}
const SCHED_IDLE = 5;
const idleToolsWork = linux && spawnSync('chrt', ['--idle', '0', 'ionice', '-c', '3', 'true']).status === 0;

function niceOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

describe.skipIf(!linux)(`ProcessRunner: signals and background priority${linux ? '' : ' (skipped: needs /proc, Linux only)'}`, () => {
  let runner: ProcessRunner;
  let root: string;
  let seq = 0;

  beforeAll(() => {
    runner = new ProcessRunner();
    root = mkdtempSync(join(tmpdir(), 'kiln-signals-'));
  });
  afterAll(async () => {
    await runner.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** Starts a shell that prints its pid and then spins on the CPU; resolves with the pid and the run's end. */
  async function spin(over: Partial<RunRequest> = {}, viaPriority?: PriorityRunner): Promise<{ id: string; pid: number; exit: Promise<RunExit> }> {
    const id = `spin-${++seq}`;
    const execRoot = join(root, id);
    mkdirSync(execRoot, { recursive: true });
    const out = join(root, `${id}.out`);
    const exit = (viaPriority ?? runner).run({
      id,
      argv: ['/bin/sh', '-c', 'echo $$; while :; do :; done'],
      env: {},
      execRoot,
      workingDirectory: '',
      stdout: new FileLogSink(out),
      stderr: new FileLogSink(join(root, `${id}.err`)),
      timeoutMs: 0,
      ...over,
    });
    for (let i = 0; i < 200; i++) {
      const text = existsSync(out) ? readFileSync(out, 'utf8') : '';
      if (text.endsWith('\n')) return { id, pid: Number(text.trim()), exit };
      await sleep(50);
    }
    throw new Error('the spinning action never printed its pid');
  }

  /** CPU ticks the process gains over `ms`. */
  async function gain(pid: number, ms: number): Promise<number> {
    const before = cpuTicks(pid);
    await sleep(ms);
    return cpuTicks(pid) - before;
  }

  it('STOP freezes an action (its CPU time stops growing), CONT lets it go on, TERM ends it', async () => {
    const { id, pid, exit } = await spin();
    expect(await gain(pid, 1_000)).toBeGreaterThan(0);
    expect(runner.signal(id, 'STOP')).toBe(true);
    await sleep(300);
    expect(await gain(pid, 1_500)).toBe(0);
    expect(runner.signal(id, 'CONT')).toBe(true);
    await sleep(300);
    expect(await gain(pid, 1_500)).toBeGreaterThan(0);
    expect(runner.signal(id, 'TERM')).toBe(true);
    expect(await exit).toMatchObject({ signal: 'SIGTERM', exitCode: 143, killed: false });
  });

  it('TERM reaches a stopped action too', async () => {
    const { id, exit } = await spin();
    runner.signal(id, 'STOP');
    await sleep(200);
    runner.signal(id, 'TERM');
    expect(await exit).toMatchObject({ signal: 'SIGTERM' });
  });

  it("a paused action's timeout waits with it", async () => {
    const { id, pid, exit } = await spin({ timeoutMs: 3_000 });
    runner.signal(id, 'STOP');
    const ended = await Promise.race([exit.then(() => true), sleep(5_000).then(() => false)]);
    expect(ended).toBe(false);
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    runner.signal(id, 'CONT');
    expect(await exit).toMatchObject({ timedOut: true });
  });

  it('answers false for an action it does not run', () => {
    expect(runner.signal('no-such-run', 'STOP')).toBe(false);
  });

  it('runs background actions at nice 19, and their autogroup too where the kernel has autogroups', async () => {
    const polite = new PriorityRunner(runner, () => 'background');
    const { id, pid, exit } = await spin({}, polite);
    try {
      // Inherited from the background launcher at fork: 19 from the first instruction, no waiting.
      expect(niceOf(pid)).toBe(19);
      // Where chrt and ionice work, the launcher runs under SCHED_IDLE and the idle I/O class, and so does the action.
      if (idleToolsWork) {
        expect(schedPolicyOf(pid)).toBe(SCHED_IDLE);
        expect(execFileSync('ionice', ['-p', String(pid)], { encoding: 'utf8' }).trim()).toBe('idle');
      }
      if (existsSync(`/proc/${pid}/autogroup`) && readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1') {
        expect(await eventually(() => /nice 19/.test(readFileSync(`/proc/${pid}/autogroup`, 'utf8')), true)).toBe(true);
      }
    } finally {
      runner.kill(id);
      await exit;
    }
    const normal = await spin({}, new PriorityRunner(runner, () => 'normal'));
    try {
      expect(niceOf(normal.pid)).toBe(niceOf(process.pid));
      expect(schedPolicyOf(normal.pid)).toBe(schedPolicyOf(process.pid));
    } finally {
      runner.kill(normal.id);
      await normal.exit;
    }
  });
});
