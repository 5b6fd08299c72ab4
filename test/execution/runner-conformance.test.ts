// One suite, every Runner: what the LocalExecutor relies on from whatever runs
// its processes. A new runner (sandbox, WASI) joins by adding a line to RUNNERS.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileLogSink } from '../../engine/execution/log-sink';
import { SPAWN_FAILURE_EXIT_CODE, type RunRequest, type Runner } from '../../engine/execution/runner';
import { ProcessRunner } from '../../engine/worker/process-runner';
import { FakeRunner, asProcessArgv } from './fake-runner';
import { setUpSandbox } from '../../engine/sandbox/sandbox-setup';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';

const sandboxProbe = probeBubblewrap({ dataDir: '/nonexistent-kiln' });

const RUNNERS: { name: string; make: () => Runner; argv: (logical: string[]) => string[]; skip?: string }[] = [
  { name: 'ProcessRunner', make: () => new ProcessRunner(), argv: asProcessArgv },
  { name: 'FakeRunner', make: () => new FakeRunner(), argv: (a) => a },
  {
    name: 'SandboxRunner (bubblewrap over the ProcessRunner)',
    make: () => setUpSandbox({ mode: 'on', lanMode: false, dataDir: '/nonexistent-kiln', probe: () => sandboxProbe }).wrap(new ProcessRunner()),
    argv: asProcessArgv,
    skip: sandboxProbe.available ? undefined : sandboxProbe.reason,
  },
];

for (const r of RUNNERS.filter((r) => r.skip)) describe.skip(`Runner conformance: ${r.name} (skipped: ${r.skip})`, () => it('runs', () => {}));

describe.each(RUNNERS.filter((r) => !r.skip))('Runner conformance: $name', ({ make, argv }) => {
  let runner: Runner;
  let root: string;
  let seq = 0;

  beforeAll(() => {
    runner = make();
    root = mkdtempSync(join(tmpdir(), 'kiln-runner-'));
  });
  afterAll(async () => {
    await runner.close();
    rmSync(root, { recursive: true, force: true });
  });

  function request(logical: string[], over: Partial<RunRequest> = {}): RunRequest & { out: string; err: string } {
    const id = `run-${++seq}`;
    const execRoot = join(root, id);
    mkdirSync(join(execRoot, 'sub'), { recursive: true });
    const out = join(root, `${id}.out`);
    const err = join(root, `${id}.err`);
    return {
      id,
      argv: argv(logical),
      env: {},
      execRoot,
      workingDirectory: '',
      stdout: new FileLogSink(out),
      stderr: new FileLogSink(err),
      timeoutMs: 30_000,
      ...over,
      out,
      err,
    };
  }
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return '';
    }
  };

  it('reports exit codes, zero and non-zero', async () => {
    expect(await runner.run(request(['exit', '0']))).toMatchObject({ exitCode: 0, timedOut: false, killed: false });
    expect((await runner.run(request(['exit', '3']))).exitCode).toBe(3);
  });

  it('gives the process exactly the environment it was given', async () => {
    const req = request(['env'], { env: { KILN_A: '1', KILN_B: 'two words' } });
    await runner.run(req);
    expect(read(req.out).split('\n').filter(Boolean).sort()).toEqual(['KILN_A=1', 'KILN_B=two words']);
  });

  it('runs in the working directory under the exec root', async () => {
    const req = request(['pwd'], { workingDirectory: 'sub' });
    await runner.run(req);
    expect(read(req.out).trim()).toBe(join(req.execRoot, 'sub'));
  });

  it('writes stdout and stderr byte for byte into their sinks', async () => {
    const text = 'héllo\nwörld\n\ttabs ';
    const a = request(['out', text]);
    const b = request(['err', text]);
    await runner.run(a);
    await runner.run(b);
    expect(read(a.out)).toBe(text);
    expect(read(a.err)).toBe('');
    expect(read(b.err)).toBe(text);
    expect(read(b.out)).toBe('');
  });

  it('kills a process at its timeout and says so', async () => {
    const started = Date.now();
    const exit = await runner.run(request(['sleep', '30'], { timeoutMs: 300 }));
    expect(exit.timedOut).toBe(true);
    expect(exit.killed).toBe(false);
    expect(exit.exitCode).toBeGreaterThan(128);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('kill() stops a run by id, and ignores ids it does not know', async () => {
    const req = request(['sleep', '30']);
    const pending = runner.run(req);
    setTimeout(() => runner.kill(req.id), 300);
    runner.kill('no-such-run');
    const exit = await pending;
    expect(exit.killed).toBe(true);
    expect(exit.timedOut).toBe(false);
    expect(exit.exitCode).toBeGreaterThan(128);
  });

  it('reports a program that cannot start as exit 127 with the reason, without rejecting', async () => {
    const exit = await runner.run(request(['no-such-program']));
    expect(exit.exitCode).toBe(SPAWN_FAILURE_EXIT_CODE);
    expect(exit.spawnError).toBeTruthy();
  });

  it('says whether it is ready and what it honours', () => {
    expect(runner.ready().ready).toBe(true);
    const caps = runner.capabilities();
    expect(caps.name).toMatch(/\S/);
    expect(Object.keys(caps.honours).sort()).toEqual(['cpuLimit', 'memoryLimit', 'networkIsolation', 'priority']);
  });
});
