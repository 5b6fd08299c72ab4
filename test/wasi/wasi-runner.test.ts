// The WASI runner against real wasm32-wasi programs compiled at test time:
// exit codes, arguments and environment, live logs, confinement to the working
// directory, timeout, memory limit, traps and the errors a user must be told.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileLogSink } from '../../engine/execution/log-sink';
import { SPAWN_FAILURE_EXIT_CODE, type RunRequest } from '../../engine/execution/runner';
import { WasiRunner } from '../../engine/wasi/wasi-runner';
import { PROGRAMS, compileWasi, removeWasiBuilds, toolchain } from './wasi-toolchain';

const title = toolchain.ok ? 'WasiRunner' : `WasiRunner (skipped: ${toolchain.reason})`;

describe.skipIf(!toolchain.ok)(title, () => {
  const wasm: Record<string, string> = {};
  let runner: WasiRunner;
  let root: string;
  let seq = 0;

  beforeAll(() => {
    for (const [name, source] of Object.entries(PROGRAMS)) wasm[name] = compileWasi(name, source);
    runner = new WasiRunner();
    root = mkdtempSync(join(tmpdir(), 'kiln-wasi-'));
  }, 120_000);
  afterAll(async () => {
    await runner?.close();
    if (root) rmSync(root, { recursive: true, force: true });
    removeWasiBuilds();
  });

  /** An exec root holding `program` as tool.wasm (and `files`), with log files beside it. */
  function request(program: string | undefined, args: string[] = [], over: Partial<RunRequest> = {}, files: Record<string, string> = {}) {
    const id = `run-${++seq}`;
    const execRoot = join(root, id, 'root');
    mkdirSync(execRoot, { recursive: true });
    if (program) copyFileSync(wasm[program], join(execRoot, 'tool.wasm'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(execRoot, name), text);
    const out = join(root, id, 'stdout');
    const err = join(root, id, 'stderr');
    const req: RunRequest = {
      id,
      argv: ['tool.wasm', ...args],
      env: {},
      execRoot,
      workingDirectory: '',
      stdout: new FileLogSink(out),
      stderr: new FileLogSink(err),
      timeoutMs: 60_000,
      platform: { OSFamily: 'wasi' },
      ...over,
    };
    const read = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : '');
    return { req, execRoot, stdout: () => read(out), stderr: () => read(err) };
  }

  it('copies its input to its output inside the working directory, and exits 0', async () => {
    const r = request('copy', ['in.txt', 'out/copied.txt'], {}, { 'in.txt': 'hello, wasi\n' });
    mkdirSync(join(r.execRoot, 'out'));
    expect(await runner.run(r.req)).toMatchObject({ exitCode: 0, timedOut: false, killed: false });
    expect(readFileSync(join(r.execRoot, 'out/copied.txt'), 'utf8')).toBe('hello, wasi\n');
  });

  it('gets its arguments and exactly its environment, writes stdout and stderr, and exits with its own code', async () => {
    const r = request('talk', ['a b', 'c'], { env: { GREETING: 'héllo' } });
    const exit = await runner.run(r.req);
    expect(exit.exitCode).toBe(3);
    expect(r.stdout()).toBe('out: a b c\nGREETING=héllo\n');
    expect(r.stderr()).toBe('to stderr\n');
  });

  it('runs in the working directory when it is a subfolder', async () => {
    const r = request(undefined, ['in.txt', 'out.txt'], { argv: ['../tool.wasm', 'in.txt', 'out.txt'], workingDirectory: 'sub' });
    copyFileSync(wasm.copy, join(r.execRoot, 'tool.wasm'));
    mkdirSync(join(r.execRoot, 'sub'));
    writeFileSync(join(r.execRoot, 'sub/in.txt'), 'nested');
    expect((await runner.run(r.req)).exitCode).toBe(0);
    expect(readFileSync(join(r.execRoot, 'sub/out.txt'), 'utf8')).toBe('nested');
  });

  it('streams stdout into its log file while the program still runs', async () => {
    const r = request('waitForGo');
    const running = runner.run(r.req);
    // The program waits for "go": until the test writes it, "started" can only be there if it streamed.
    for (let i = 0; i < 600 && !r.stdout().includes('started'); i++) await new Promise((res) => setTimeout(res, 50));
    expect(r.stdout()).toBe('started\n');
    writeFileSync(join(r.execRoot, 'go'), '');
    expect((await running).exitCode).toBe(0);
    expect(r.stdout()).toBe('started\ndone\n');
  });

  it('cannot open files outside its working directory, nor any socket', async () => {
    const secret = join(root, 'secret.txt');
    writeFileSync(secret, 'do not read');
    const r = request('escape', ['../secret.txt', '../../secret.txt', secret, '/etc/passwd', 'mine.txt'], {}, { 'mine.txt': 'ok' });
    const exit = await runner.run(r.req);
    const paths = ['../secret.txt', '../../secret.txt', secret, '/etc/passwd'];
    expect(r.stdout()).toBe(
      [
        ...paths.flatMap((p, i) => [`${p}: refused`, `link${i + 1} -> ${p}: refused`]),
        'mine.txt: OPENED',
        'link5 -> mine.txt: OPENED',
        'sockets: refused',
        '',
      ].join('\n'),
    );
    // It opened its own file, so it exits 1; nothing else was reached.
    expect(exit.exitCode).toBe(1);
  });

  it('kills a module that loops forever at its timeout', async () => {
    const r = request('loop', [], { timeoutMs: 1000 });
    const exit = await runner.run(r.req);
    expect(exit).toMatchObject({ timedOut: true, killed: false });
    expect(exit.exitCode).not.toBe(0);
  });

  it('kill() stops a running module', async () => {
    const r = request('loop', [], { timeoutMs: 0 });
    const running = runner.run(r.req);
    await new Promise((res) => setTimeout(res, 300));
    runner.kill(r.req.id);
    expect(await running).toMatchObject({ killed: true, timedOut: false });
  });

  it('holds a module to the memory platform property: allocation beyond it fails inside the program', async () => {
    const r = request('alloc', [], { platform: { OSFamily: 'wasi', memory: '32MiB' } });
    const exit = await runner.run(r.req);
    expect(exit.exitCode).toBe(12);
    const got = Number(r.stdout().trim());
    expect(got).toBeGreaterThan(16);
    expect(got).toBeLessThan(32);
    expect(r.stderr()).toMatch(/out of memory after \d+ MiB/);
  });

  it('rejects a memory property that is not a size, naming it', async () => {
    const r = request('talk', [], { platform: { OSFamily: 'wasi', memory: 'lots' } });
    await expect(runner.run(r.req)).rejects.toMatchObject({ message: expect.stringContaining('memory="lots"') });
  });

  it('reports a trap with its message on stderr and a non-zero exit code', async () => {
    const r = request('trap');
    const exit = await runner.run(r.req);
    expect(exit.exitCode).toBe(134);
    expect(r.stderr()).toMatch(/trapped: .*unreachable/);
  });

  it('says which module is missing', async () => {
    const r = request(undefined, [], { argv: ['bin/nothing.wasm'] });
    expect(await runner.run(r.req)).toMatchObject({ exitCode: SPAWN_FAILURE_EXIT_CODE, spawnError: expect.stringContaining('no module bin/nothing.wasm in the input root') });
  });

  it('refuses a module outside the input root', async () => {
    const r = request(undefined, [], { argv: [wasm.talk] });
    expect((await runner.run(r.req)).spawnError).toMatch(/absolute path/);
    const s = request(undefined, [], { argv: ['../../outside.wasm'] });
    copyFileSync(wasm.talk, join(root, 'outside.wasm'));
    expect((await runner.run(s.req)).spawnError).toMatch(/outside the input root/);
  });

  it('names an import the runtime does not provide', async () => {
    const r = request('foreignImport');
    expect((await runner.run(r.req)).spawnError).toMatch(/imports env\.sock_open \(function\), which Kiln's WASI runtime does not provide/);
  });

  it('tells a snapshot-0 module and a component from a preview 1 module', async () => {
    const old = request('snapshot0');
    expect((await runner.run(old.req)).spawnError).toMatch(/wasi_unstable.*preview 1/);
    const component = request(undefined, [], {}, {});
    writeFileSync(join(component.execRoot, 'tool.wasm'), Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]));
    expect((await runner.run(component.req)).spawnError).toMatch(/is a WebAssembly component \(WASI preview 2\)/);
    const text = request(undefined, [], {}, { 'tool.wasm': '#!/bin/sh\necho hi\n' });
    expect((await runner.run(text.req)).spawnError).toMatch(/is not a WebAssembly module/);
  });

  it('reuses an idle thread for the next run, but not one that was terminated or ended with a large memory', async () => {
    const own = new WasiRunner({ idleThreads: 1 });
    try {
      await own.run(request('talk', ['first'], { env: { GREETING: 'one' } }).req);
      const second = request('talk', ['second']);
      await own.run(second.req);
      expect(own.pool.threadsStarted).toBe(1);
      // Nothing of the first run reaches the second on the same thread.
      expect(second.stdout()).toBe('out: second\nGREETING=(unset)\n');

      expect((await own.run(request('loop', [], { timeoutMs: 500 }).req)).timedOut).toBe(true);
      await own.run(request('talk').req);
      expect(own.pool.threadsStarted).toBe(2);

      expect((await own.run(request('alloc', [], { platform: { OSFamily: 'wasi', memory: '128MiB' } }).req)).exitCode).toBe(12);
      await own.run(request('talk').req);
      expect(own.pool.threadsStarted).toBe(3);
    } finally {
      await own.close();
    }
  });

  it('compiles a module once for many runs', async () => {
    const before = runner.modules.compileCount;
    const runs = [0, 1, 2].map(() => request('talk'));
    const exits = await Promise.all(runs.map((r) => runner.run(r.req)));
    expect(exits.map((e) => e.exitCode)).toEqual([1, 1, 1]);
    expect(runner.modules.compileCount - before).toBeLessThanOrEqual(1);
  });
});
