// The fallback for an action whose launcher died before reporting its pid:
// whatever works inside the action's exec root is found by its working
// directory and killed, and nothing working elsewhere is touched.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killProcessesWorkingIn } from '../../engine/worker/process-markers';

const root = mkdtempSync(join(tmpdir(), 'kiln-kill-by-cwd-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

function sleeper(cwd: string): Promise<ChildProcess> {
  const child = spawn('sleep', ['300'], { cwd, stdio: 'ignore' });
  children.push(child);
  return new Promise((resolve) => child.once('spawn', () => resolve(child)));
}

const exited = (c: ChildProcess) => new Promise<NodeJS.Signals | null>((resolve) => c.once('exit', (_code, signal) => resolve(signal)));

describe.skipIf(process.platform !== 'linux')(`killProcessesWorkingIn${process.platform === 'linux' ? '' : ' (skipped: reads /proc, Linux only)'}`, () => {
  it('kills the processes working in the exec root or below it, and leaves a neighbour whose name shares its prefix alone', async () => {
    const execRoot = join(root, 'a1');
    mkdirSync(join(execRoot, 'sub'), { recursive: true });
    mkdirSync(join(root, 'a10'));
    const top = await sleeper(execRoot);
    const below = await sleeper(join(execRoot, 'sub'));
    const neighbour = await sleeper(join(root, 'a10'));
    const topExit = exited(top);
    const belowExit = exited(below);
    expect(killProcessesWorkingIn([execRoot])).toBe(2);
    expect(await topExit).toBe('SIGKILL');
    expect(await belowExit).toBe('SIGKILL');
    expect(neighbour.exitCode).toBeNull();
    expect(neighbour.signalCode).toBeNull();
    expect(killProcessesWorkingIn([])).toBe(0);
  });

  it('finds an exec root named through a symlink, since the kernel reports the real working directory', async () => {
    const real = join(root, 'real');
    mkdirSync(join(real, 'b2'), { recursive: true });
    symlinkSync(real, join(root, 'linked'));
    const child = await sleeper(join(real, 'b2'));
    const exit = exited(child);
    expect(killProcessesWorkingIn([join(root, 'linked', 'b2')])).toBe(1);
    expect(await exit).toBe('SIGKILL');
  });
});
