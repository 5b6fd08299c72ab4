// Every process an action starts ends with it: children that call setsid, and
// all of an action's processes when the engine goes away mid-run.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LauncherClient, launcherCommand } from '../../engine/worker/launcher-client';
import type { LauncherMessage } from '../../engine/worker/launcher-protocol';

const dir = mkdtempSync(join(tmpdir(), 'kiln-launcher-'));
const stray: number[] = [];
let seq = 0;
const hasSetsid = ['/usr/bin/setsid', '/bin/setsid'].some(existsSync);

afterEach(() => {
  // Whatever a failing test leaves must not outlive it.
  for (const pid of stray.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function spawnRequest(script: string, timeoutMs = 0) {
  const id = `a${++seq}`;
  return {
    id,
    argv: ['sh', '-c', script],
    cwd: dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    stdoutPath: join(dir, `${id}.out`),
    stderrPath: join(dir, `${id}.err`),
    timeoutMs,
  };
}

/** Running, as opposed to gone or a zombie waiting to be reaped. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`gave up waiting: ${what}`);
}

async function pidFrom(file: string): Promise<number> {
  await until(() => existsSync(file) && readFileSync(file, 'utf8').trim() !== '', `${file} to be written`);
  const pid = Number(readFileSync(file, 'utf8').trim());
  stray.push(pid);
  return pid;
}

describe.skipIf(!hasSetsid)('an action whose child calls setsid (skipped: no setsid binary)', () => {
  it('loses that child when it exits', async () => {
    const launcher = new LauncherClient();
    try {
      const pidFile = join(dir, `escapee-${seq}.pid`);
      const exit = await launcher.run(spawnRequest(`setsid sleep 300 & echo $! > ${pidFile}; exit 0`));
      expect(exit.code).toBe(0);
      const pid = await pidFrom(pidFile);
      await until(() => !isAlive(pid), 'the setsid child to be killed');
    } finally {
      await launcher.close();
    }
  });

  it('loses that child when it times out', async () => {
    const launcher = new LauncherClient();
    try {
      const pidFile = join(dir, `escapee-${seq}.pid`);
      const exit = await launcher.run(spawnRequest(`setsid sleep 300 & echo $! > ${pidFile}; sleep 300`, 500));
      expect(exit.timedOut).toBe(true);
      const pid = await pidFrom(pidFile);
      await until(() => !isAlive(pid), 'the setsid child to be killed');
    } finally {
      await launcher.close();
    }
  });

  it('loses that child when the launcher itself is killed', async () => {
    const launcher = new LauncherClient();
    const pidFile = join(dir, `escapee-${seq}.pid`);
    const pending = launcher.run(spawnRequest(`setsid sleep 300 & echo $! > ${pidFile}; sleep 300`)).catch((e: Error) => e);
    const pid = await pidFrom(pidFile);
    process.kill(launcher.pid!, 'SIGKILL');
    expect(await pending).toBeInstanceOf(Error);
    await until(() => !isAlive(pid), 'the setsid child to be killed');
    await launcher.close();
  });
});

describe('the launcher when the engine dies', () => {
  it('survives the engine closing its output pipe (EPIPE) and kills every action', async () => {
    const { command, args, env } = launcherCommand();
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const started = new Map<string, number>();
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as LauncherMessage;
      if (msg.type === 'started') started.set(msg.id, msg.pid);
    });
    const long = { type: 'spawn', ...spawnRequest('exec sleep 300'), tag: `t-${process.pid}-${seq}` };
    const short = { type: 'spawn', ...spawnRequest('sleep 1') };
    child.stdin!.write(JSON.stringify(long) + '\n');
    child.stdin!.write(JSON.stringify(short) + '\n');
    await until(() => started.size === 2, 'both actions to start');
    const sleeper = started.get(long.id)!;
    stray.push(sleeper);
    // The engine's end of stdout goes away; its stdin stays open, as when the engine is wedged mid-exit.
    child.stdout!.destroy();
    // The short action exits, the launcher reports it into the closed pipe.
    await exited;
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    await until(() => !isAlive(sleeper), 'the long action to be killed');
  });
});
