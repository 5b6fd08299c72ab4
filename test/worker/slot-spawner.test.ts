// kiln-spawn through its Node side (slot-spawner.ts), outside any sandbox: what
// the action gets (argv, environment, working folder, descriptors, session,
// priority, user) and what the agent hears (pid, exit, signal, failures).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findNativeHelper } from '../../engine/sandbox/nest-helper';
import { SlotSpawner, encodeRequest, type SpawnerRequest } from '../../engine/worker/slot-spawner';

const helper = findNativeHelper('kiln-spawn');
const isRoot = process.getuid?.() === 0;

interface Outcome {
  pid?: number;
  failed?: string;
  code?: number | null;
  signal?: NodeJS.Signals | null;
}

describe.skipIf(process.platform !== 'linux')(`kiln-spawn${process.platform === 'linux' ? '' : ' (skipped: kiln-spawn is a Linux-only helper)'}`, () => {
  let dir: string;
  let spawner: SlotSpawner;
  const gone: string[] = [];

  beforeAll(async () => {
    if (!helper.path) throw new Error(`kiln-spawn is not there: ${helper.why}`);
    dir = mkdtempSync(join(tmpdir(), 'kiln-spawner-'));
    spawner = await SlotSpawner.start(helper.path, (why) => gone.push(why));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (req: Partial<SpawnerRequest> & { argv: string[] }) =>
    new Promise<Outcome & { stdout: string; stderr: string }>((resolve) => {
      const out: Outcome = {};
      const stdoutPath = join(dir, `${Math.random()}.out`);
      const stderrPath = join(dir, `${Math.random()}.err`);
      const read = (path: string) => {
        try {
          return readFileSync(path, 'utf8');
        } catch {
          return '';
        }
      };
      const done = () => resolve({ ...out, stdout: read(stdoutPath), stderr: read(stderrPath) });
      spawner.spawn(
        { env: { PATH: '/usr/bin:/bin' }, cwd: dir, stdoutPath, stderrPath, writable: [], cgroups: [], polite: false, ...req },
        {
          started: (pid) => (out.pid = pid),
          failed: (message) => {
            out.failed = message;
            done();
          },
          exited: (code, signal) => {
            out.code = code;
            out.signal = signal;
            done();
          },
        },
      );
    });

  it('runs the command with its argv, environment and working folder, output appended to the log files', async () => {
    writeFileSync(join(dir, 'there'), '');
    const r = await run({ argv: ['/bin/sh', '-c', 'echo "$1 $GREETING"; ls; echo oops >&2; exit 3', 'sh', 'hello'], env: { GREETING: 'world', PATH: '/usr/bin:/bin' } });
    expect(r.pid).toBeGreaterThan(0);
    expect([r.code, r.signal, r.failed]).toEqual([3, null, undefined]);
    expect(r.stdout).toMatch(/^hello world\n[^]*there\n/);
    expect(r.stderr).toBe('oops\n');
  });

  it("finds a bare command in the environment's PATH, not the spawner's", async () => {
    const bin = join(dir, 'bin');
    rmSync(bin, { recursive: true, force: true });
    await run({ argv: ['/bin/mkdir', bin] });
    writeFileSync(join(bin, 'only-here'), '#!/bin/sh\necho found me\n', { mode: 0o755 });
    expect(await run({ argv: ['only-here'], env: { PATH: `/nowhere:${bin}` } })).toMatchObject({ code: 0, stdout: 'found me\n' });
    const notFound = await run({ argv: ['only-here'], env: { PATH: '/usr/bin:/bin' } });
    expect([notFound.failed, notFound.pid]).toEqual(['spawn only-here ENOENT', undefined]);
  });

  it('gives the action a session and process group of its own, stdin from /dev/null, no fd 3, and the write-only files from fd 4', async () => {
    const w1 = join(dir, 'w1');
    const w2 = join(dir, 'w2');
    writeFileSync(w1, '');
    writeFileSync(w2, '');
    const r = await run({
      argv: ['/bin/bash', '-c', 'ps -o pid=,pgid=,sid= -p $$; readlink /proc/self/fd/0; [ -e /proc/self/fd/3 ] && echo fd3 open; echo four >&4; echo five >&5'],
      writable: [w1, w2],
    });
    expect(r.code, r.stderr).toBe(0);
    const [ids, stdin, ...rest] = r.stdout.trim().split('\n');
    const [pid, pgid, sid] = ids!.trim().split(/\s+/).map(Number);
    expect([pgid, sid]).toEqual([pid, pid]);
    expect(pid).toBe(r.pid);
    expect(stdin).toBe('/dev/null');
    expect(rest).toEqual([]);
    expect([readFileSync(w1, 'utf8'), readFileSync(w2, 'utf8')]).toEqual(['four\n', 'five\n']);
  });

  it('lowers a polite action to nice 19 before it runs, and leaves others at normal priority', async () => {
    const polite = await run({ argv: ['/bin/sh', '-c', 'ps -o ni= -p $$'], polite: true });
    const normal = await run({ argv: ['/bin/sh', '-c', 'ps -o ni= -p $$'] });
    expect([polite.stdout.trim(), normal.stdout.trim()]).toEqual(['19', String(Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[16]))]);
  });

  it('reports the signal that ended an action by the name Node gives it', async () => {
    expect(await run({ argv: ['/bin/sh', '-c', 'kill -ABRT $$'] })).toMatchObject({ code: null, signal: 'SIGABRT' });
    expect(await run({ argv: ['/bin/sh', '-c', 'kill -KILL $$'] })).toMatchObject({ code: null, signal: 'SIGKILL' });
  });

  it('says what failed when nothing could run, and keeps going', async () => {
    expect(await run({ argv: ['/no/such/program'] })).toMatchObject({ failed: 'spawn /no/such/program ENOENT' });
    expect(await run({ argv: ['/bin/true'], cwd: join(dir, 'missing') })).toMatchObject({ failed: 'spawn /bin/true ENOENT' });
    expect(await run({ argv: ['/bin/true'], stdoutPath: join(dir, 'missing', 'out') })).toMatchObject({ failed: 'spawn /bin/true ENOENT (stdout)' });
    expect(await run({ argv: ['/bin/true'], cgroups: [join(dir, 'missing', 'cgroup.procs')] })).toMatchObject({ failed: 'spawn /bin/true ENOENT (cgroup)' });
    expect(await run({ argv: ['/bin/true'] })).toMatchObject({ code: 0 });
    expect(gone).toEqual([]);
  });

  it('writes its own pid into each cgroup.procs it is given before it runs (a file stands in for cgroupfs)', async () => {
    const procs = [join(dir, 'a.procs'), join(dir, 'b.procs')];
    for (const path of procs) writeFileSync(path, '');
    expect(await run({ argv: ['/bin/true'], cgroups: procs })).toMatchObject({ code: 0 });
    // The first may also have had a keep-moving write (below) if /bin/true took over 10 ms; the others never do.
    expect(readFileSync(procs[0], 'utf8')).not.toBe('');
    expect(readFileSync(procs[1], 'utf8')).toBe('0');
  });

  /** How many times `pid` was written into `path` after the child's own "0" (each write of the spawner's kept descriptor follows the last). */
  const movesOf = (path: string, pid: number) => {
    const text = readFileSync(path, 'utf8');
    expect(text, text).toMatch(new RegExp(`^(${pid})*0?$`));
    return text.length === 1 ? 0 : Math.floor(text.length / String(pid).length);
  };

  it('while an action runs, moves it into its own first cgroup again every ~10 ms, which keeps the kernel\'s cgroup moves fast', async () => {
    const first = join(dir, 'first.procs');
    const second = join(dir, 'second.procs');
    writeFileSync(first, '');
    writeFileSync(second, '');
    const r = await run({ argv: ['/bin/sleep', '0.3'], cgroups: [first, second] });
    expect(r).toMatchObject({ code: 0 });
    // ~30 when the machine is quiet; fewer when it is busy, never none in 300 ms.
    expect(movesOf(first, r.pid!)).toBeGreaterThanOrEqual(3);
    expect(readFileSync(second, 'utf8')).toBe('0');
  });

  it('stops moving a long action once its start is a second old', async () => {
    const procs = join(dir, 'long.procs');
    writeFileSync(procs, '');
    const r = await run({ argv: ['/bin/sleep', '1.8'], cgroups: [procs] });
    expect(r).toMatchObject({ code: 0 });
    // At most one per 10 ms over the first second (~180 had it gone on to the end).
    expect(movesOf(procs, r.pid!)).toBeLessThanOrEqual(101);
  });

  it.skipIf(!isRoot)(`runs the action as the given uid and gid with no supplementary groups${isRoot ? '' : ' (skipped: switching users needs root)'}`, async () => {
    const r = await run({ argv: ['/bin/sh', '-c', 'id -u; id -g; id -G'], runAs: { uid: 2000000123, gid: 2000000123 } });
    expect(r.stdout).toBe('2000000123\n2000000123\n2000000123\n');
  });

  it('refuses a request field holding a NUL byte before anything is sent', () => {
    expect(() => encodeRequest('1', { argv: ['/bin/echo', 'a\0b'], env: {}, cwd: '/', stdoutPath: '/dev/null', stderrPath: '/dev/null', writable: [], cgroups: [], polite: false })).toThrow(
      /NUL byte/,
    );
  });

  it('ends at once on a malformed request, and when its input closes', async () => {
    const ends = (write: (stdin: NodeJS.WritableStream) => void) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(helper.path!, [], { stdio: ['pipe', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr!.on('data', (d) => (stderr += d));
        child.on('exit', (code) => resolve({ code, stderr }));
        write(child.stdin!);
      });
    const body = Buffer.from('1\0-1\0-1\0zero\0', 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt32LE(body.length);
    expect(await ends((s) => s.write(Buffer.concat([head, body])))).toEqual({ code: 2, stderr: 'kiln-spawn: a malformed request\n' });
    expect(await ends((s) => s.end())).toEqual({ code: 0, stderr: '' });
  });
});
