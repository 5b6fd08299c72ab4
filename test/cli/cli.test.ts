// Runs the real CLI entry point in a child process (through tsx, so no build step races other engineers).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { connectClients } from '../helpers';
import { ENGINE_V8_FLAGS } from '../../engine/util/v8-flags';

const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'engine', 'cli.ts');
const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kiln-cli-'));
  dirs.push(d);
  return d;
}

function kiln(args: string[], cwd = ROOT) {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (b) => (stderr += b));
  const lines = createInterface({ input: child.stdout! });
  const stdoutLines: string[] = [];
  const firstLine = new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`kiln exited ${code} before printing; stderr: ${stderr}`)));
  });
  firstLine.catch(() => undefined); // Runs that fail on purpose never print; only awaiting tests care.
  lines.on('line', (l) => stdoutLines.push(l));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, firstLine, exited, stderr: () => stderr, stdoutLines };
}

/** Pids of the processes whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc').flatMap((name) => {
    if (!/^\d+$/.test(name)) return [];
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid ? [Number(name)] : [];
    } catch {
      return []; // gone meanwhile
    }
  });
}

const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

async function until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('kiln serve', () => {
  it('prints one ready line with the real port, serves gRPC and stops cleanly on SIGTERM', async () => {
    const dataDir = await tempDir();
    const run = kiln(['serve', '--port', '0', '--http-port', '0', '--data-dir', dataDir, '--cache-size', '100MiB']);
    const line = await run.firstLine;
    const m = /^kiln listening grpc:\/\/127\.0\.0\.1:(\d+)$/.exec(line);
    expect(m, line).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);

    const clients = connectClients(`127.0.0.1:${m![1]}`);
    try {
      const caps = await clients.capabilities.get();
      expect(caps.cacheCapabilities?.actionCacheUpdateCapabilities?.updateEnabled).toBe(true);
    } finally {
      clients.close();
    }
    expect(existsSync(join(dataDir, 'cas'))).toBe(true);
    expect(existsSync(join(dataDir, 'ac'))).toBe(true);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    // Exactly one ready line; other components may add their own lines after it.
    expect(run.stdoutLines[0]).toBe(line);
    expect(run.stdoutLines.filter((l) => l.startsWith('kiln listening'))).toHaveLength(1);
  });

  it('runs the engine in a Node started with its V8 flags, and stops it with the process that was started', async () => {
    const run = kiln(['serve', '--port', '0', '--http-port', '0', '--data-dir', await tempDir()]);
    await run.firstLine;
    // Started without the flags, serve relaunched itself: the engine is its child, with them.
    const engines = childrenOf(run.child.pid!).filter((p) => ENGINE_V8_FLAGS.every((flag) => cmdline(p).includes(flag)));
    expect(engines).toHaveLength(1);
    expect(cmdline(engines[0]!)).toContain('serve');
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(alive(engines[0]!)).toBe(false);
  });

  it('stops the relaunched engine cleanly when the process that started it is killed with SIGKILL', { timeout: 120_000 }, async () => {
    const dataDir = await tempDir();
    const run = kiln(['serve', '--port', '0', '--http-port', '0', '--data-dir', dataDir]);
    await run.firstLine;
    const [engine] = childrenOf(run.child.pid!);
    expect(engine).toBeDefined();
    run.child.kill('SIGKILL');
    await until('the engine to stop', () => !alive(engine!));
    // It let go of the data folder: another serve can take it at once.
    const next = kiln(['serve', '--port', '0', '--http-port', '0', '--data-dir', dataDir]);
    expect(await next.firstLine).toMatch(/^kiln listening/);
    next.child.kill('SIGTERM');
    expect(await next.exited).toBe(0);
  });

  it('does not relaunch when Node already has the flags', async () => {
    const dataDir = await tempDir();
    const child = spawn(process.execPath, ['--import', 'tsx', ...ENGINE_V8_FLAGS, CLI, 'serve', '--port', '0', '--http-port', '0', '--data-dir', dataDir], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    await new Promise((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
    expect(childrenOf(child.pid!).filter((p) => cmdline(p).includes('serve'))).toEqual([]);
    child.kill('SIGTERM');
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0);
  });

  it('reads a YAML config file, with flags winning over it', async () => {
    const dir = await tempDir();
    const file = join(dir, 'kiln.yaml');
    await writeFile(file, 'port: 8980\ndata-dir: state\ncache-size: 1GiB\nconcurrency: 3\n');
    const run = kiln(['serve', '--config', file, '--port', '0', '--http-port', '0']);
    expect(await run.firstLine).toMatch(/^kiln listening grpc:\/\/127\.0\.0\.1:\d+$/);
    expect(await run.firstLine).not.toMatch(/:8980$/);
    // data-dir in a file is relative to the file.
    expect(existsSync(join(dir, 'state', 'cas'))).toBe(true);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
  });

  it.each([
    [['--cache-size', '20XB'], /cache-size: "20XB" is not a size/],
    [['--port', '70000'], /port: "70000" is not a port; use an integer from 0 to 65535/],
    [['--http-port=-1'], /http-port: "-1" is not a port/],
    [['--http-port', '-1'], /--http-port needs a value/],
    [['--concurrency', 'many'], /concurrency: "many" is not an integer/],
    [['--frobnicate', '1'], /unknown flag --frobnicate/],
    [['--config', '/nonexistent/kiln.yaml'], /cannot read config file \/nonexistent\/kiln.yaml/],
  ])('rejects %j with exit 2 and one line naming the problem', async (args, message) => {
    const run = kiln(['serve', '--port', '0', '--http-port', '0', ...args]);
    expect(await run.exited).toBe(2);
    const lines = run.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
  });

  it('names an unknown key in a config file', async () => {
    const dir = await tempDir();
    const file = join(dir, 'kiln.json');
    await writeFile(file, JSON.stringify({ port: 0, 'cache-sise': '1GiB' }));
    const run = kiln(['serve', '--config', file]);
    expect(await run.exited).toBe(2);
    expect(run.stderr().trim()).toMatch(/unknown key "cache-sise"; allowed keys are host, port, http-port, data-dir, cache-size/);
  });

  it('prints usage for --help', async () => {
    const top = kiln(['--help']);
    expect(await top.exited).toBe(0);
    expect(top.stdoutLines.join('\n')).toMatch(/Usage: kiln <command>[\s\S]*serve/);
    const serve = kiln(['serve', '--help']);
    expect(await serve.exited).toBe(0);
    expect(serve.stdoutLines.join('\n')).toMatch(/--cache-size SIZE/);
    const unknown = kiln(['bake']);
    expect(await unknown.exited).toBe(2);
    expect(unknown.stderr()).toMatch(/unknown command "bake"/);
  });
});
