// macOS's sandbox, as far as it can be checked off a Mac: the choice (darwin,
// and only there, when sandbox-exec is there), the command line each action
// gets, and real actions through a stand-in sandbox-exec that records its
// arguments and runs the command. Never run against the real sandbox-exec.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../engine/config-load';
import { FileLogSink } from '../../engine/execution/log-sink';
import type { RunRequest } from '../../engine/execution/runner';
import { GrpcError, Status } from '../../engine/grpc/status';
import { setUpSandbox } from '../../engine/sandbox/sandbox-setup';
import { ProcessRunner } from '../../engine/worker/process-runner';
import { FakeRunner } from '../execution/fake-runner';

const mustNotProbe = () => {
  throw new Error('bubblewrap must not be probed on macOS');
};
const noCgroups = () => ({ reason: 'no cgroup file system at /nowhere' });
const HOME = '/Users/alice';
const DATA = '/Users/alice/Library/Application Support/Kiln';
const mac = { platform: 'darwin' as const, dataDir: DATA, home: HOME, probe: mustNotProbe, cgroups: noCgroups };

describe('the sandbox on macOS: the choice', () => {
  it('auto: on where /usr/bin/sandbox-exec is, through it, never probing bubblewrap', () => {
    const inner = new FakeRunner();
    const s = setUpSandbox({ ...mac, mode: 'auto', lanMode: false, sandboxExec: () => '/usr/bin/sandbox-exec' });
    expect(s.status).toMatchObject({ enabled: true, mode: 'auto', runner: 'sandbox-exec', limits: 'none (macOS has no cgroups: memory, cpus and processes are not limited)' });
    expect(s.status.reason).toBe(
      "sandbox: auto, and sandbox-exec is here; each action runs under sandbox-exec with a profile of its own: its exec root and a temporary folder of its own writable, the home and Kiln's data folder unreadable (not yet tried on a real Mac)",
    );
    const wrapped = s.wrap(inner);
    expect(wrapped).not.toBe(inner);
    expect(wrapped.capabilities()).toMatchObject({ name: 'sandbox-exec', honours: { networkIsolation: true, memoryLimit: false, cpuLimit: false } });
  });

  it('auto without sandbox-exec: off, saying why; on: one ConfigError line', () => {
    const inner = new FakeRunner();
    const s = setUpSandbox({ ...mac, mode: 'auto', lanMode: false, sandboxExec: () => undefined });
    expect(s.status).toMatchObject({ enabled: false, mode: 'auto' });
    expect(s.status.reason).toBe("sandbox: auto, but sandbox-exec (/usr/bin/sandbox-exec) is not on this Mac; actions run unsandboxed, as Kiln's user, and can read what it can");
    expect(s.wrap(inner)).toBe(inner);
    expect(() => setUpSandbox({ ...mac, mode: 'on', lanMode: false, sandboxExec: () => undefined })).toThrow(ConfigError);
    expect(() => setUpSandbox({ ...mac, mode: 'on', lanMode: false, sandboxExec: () => undefined })).toThrow(
      /^sandbox: on, but sandbox-exec \(\/usr\/bin\/sandbox-exec\) is not on this Mac; or start with --sandbox off$/,
    );
  });

  it('off: never looks for sandbox-exec', () => {
    const s = setUpSandbox({ ...mac, mode: 'off', lanMode: true, sandboxExec: () => { throw new Error('must not look'); } });
    expect(s.status).toMatchObject({ enabled: false, mode: 'off' });
  });

  it('only on macOS: Linux keeps bubblewrap even where a sandbox-exec would be found', () => {
    const works = () => ({ available: true as const, bwrap: '/usr/bin/bwrap', host: { system: [], hidden: [] } });
    const s = setUpSandbox({ platform: 'linux', dataDir: '/nonexistent-kiln', cgroups: noCgroups, mode: 'auto', lanMode: true, probe: works, sandboxExec: () => { throw new Error('must not look on Linux'); } });
    expect(s.status.runner).toBe('bubblewrap');
    expect(s.wrap(new FakeRunner()).capabilities().name).toBe('bubblewrap');
  });
});

describe('the sandbox on macOS: what each action runs', () => {
  let root: string;
  let seq = 0;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'kiln-seatbelt-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  function request(argv: string[], over: Partial<RunRequest> = {}): RunRequest & { out: string; err: string } {
    const id = `run-${++seq}`;
    const execRoot = join(root, 'data', 'build', id);
    mkdirSync(execRoot, { recursive: true });
    const out = join(root, `${id}.out`);
    const err = join(root, `${id}.err`);
    return { id, argv, env: { PATH: '/usr/bin:/bin' }, execRoot, workingDirectory: '', stdout: new FileLogSink(out), stderr: new FileLogSink(err), timeoutMs: 30_000, ...over, out, err };
  }

  const seatbelt = (inner: FakeRunner | ProcessRunner, sandboxExec = '/usr/bin/sandbox-exec') =>
    setUpSandbox({ ...mac, dataDir: join(root, 'data'), home: join(root, 'home'), mode: 'auto', lanMode: false, sandboxExec: () => sandboxExec }).wrap(inner);

  it('runs sandbox-exec -p with the action\'s own profile, then the action\'s argv unchanged', async () => {
    const inner = new FakeRunner();
    const req = request(['exit', '0'], { env: { PATH: '/usr/bin:/bin', A: 'b' } });
    await seatbelt(inner).run(req);
    const sent = inner.requests[0];
    expect(sent.argv[0]).toBe('/usr/bin/sandbox-exec');
    expect(sent.argv[1]).toBe('-p');
    expect(sent.argv.slice(3)).toEqual(['exit', '0']);
    const profile = sent.argv[2];
    const tmp = sent.env.TMPDIR;
    expect(tmp).toMatch(new RegExp(`^${tmpdir()}/kiln-action-`));
    expect(profile).toContain(`(deny file-read* (subpath "${join(root, 'home')}"))`);
    expect(profile).toContain(`(deny file-read* (subpath "${join(root, 'data')}"))`);
    expect(profile).toContain(`(allow file-write* (subpath "${req.execRoot}") (subpath "${tmp}")`);
    expect(profile).toContain('(deny network*)');
    // The Command's environment, plus TMPDIR (it set none) pointing at the folder the profile opens.
    expect(sent.env).toEqual({ PATH: '/usr/bin:/bin', A: 'b', TMPDIR: tmp });
    expect(existsSync(tmp)).toBe(false);
  });

  it('keeps the Command\'s TMPDIR, opens the network for network=on, and gives each action its own profile', async () => {
    const inner = new FakeRunner();
    const runner = seatbelt(inner);
    const a = request(['exit', '0'], { env: { TMPDIR: '/somewhere' }, platform: { network: 'on' } });
    const b = request(['exit', '0']);
    await runner.run(a);
    await runner.run(b);
    expect(inner.requests[0].env).toEqual({ TMPDIR: '/somewhere' });
    expect(inner.requests[0].argv[2]).toContain('(allow network*)');
    expect(inner.requests[0].argv[2]).toContain(`(subpath "${a.execRoot}")`);
    expect(inner.requests[1].argv[2]).toContain('(deny network*)');
    expect(inner.requests[1].argv[2]).toContain(`(subpath "${b.execRoot}")`);
    expect(inner.requests[1].argv[2]).not.toContain(`(subpath "${a.execRoot}")`);
  });

  it('refuses sandbox=none (FAILED_PRECONDITION) and a malformed network value (INVALID_ARGUMENT), running nothing', async () => {
    const inner = new FakeRunner();
    const runner = seatbelt(inner);
    await expect(runner.run(request(['exit', '0'], { platform: { sandbox: 'none' } }))).rejects.toMatchObject({ code: Status.FAILED_PRECONDITION });
    const bad = runner.run(request(['exit', '0'], { platform: { network: 'maybe' } }));
    await expect(bad).rejects.toBeInstanceOf(GrpcError);
    await expect(bad).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT });
    expect(inner.requests).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0)(`hands the temporary folder to the action user when the action runs as one (Kiln as root)${process.getuid?.() !== 0 ? ' (skipped: handing a folder to another user needs root)' : ''}`, async () => {
    let owner: number | undefined;
    const inner = new FakeRunner();
    const run = inner.run.bind(inner);
    inner.run = async (req) => {
      owner = statSync(req.env.TMPDIR).uid;
      return run(req);
    };
    await seatbelt(inner).run(request(['exit', '0'], { runAs: { uid: 65534, gid: 65534 } }));
    expect(owner).toBe(65534);
  });

  describe('real processes through a stand-in sandbox-exec', () => {
    let standIn: string;
    let record: string;
    let runner: ReturnType<typeof seatbelt>;
    beforeAll(() => {
      record = join(root, 'sandbox-exec.args');
      standIn = join(root, 'sandbox-exec');
      // Records its arguments one per line (the profile's own newlines become \n), then runs the command as sandbox-exec would.
      writeFileSync(
        standIn,
        `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a" | sed ':a;N;$!ba;s/\\n/\\\\n/g'; done > '${record}'\n` +
          `[ "$1" = -p ] || { echo "sandbox-exec: usage" >&2; exit 64; }\nshift 2\n` +
          `case "$1" in /nonexistent/*) echo "sandbox-exec: execvp() of '$1' failed: No such file or directory" >&2; exit 71;; bad-profile) echo "sandbox-exec: unbound variable" >&2; exit 65;; esac\nexec "$@"\n`,
      );
      chmodSync(standIn, 0o755);
      runner = seatbelt(new ProcessRunner(), standIn);
    });
    afterAll(async () => runner.close());

    it('runs the action in its exec root, with its temporary folder, removed after it', async () => {
      const req = request(['/bin/sh', '-c', 'echo made > out.txt && printf %s "$TMPDIR" > tmp.txt && touch "$TMPDIR/scratch" && echo "$A"'], { env: { PATH: '/usr/bin:/bin', A: 'b' } });
      const exit = await runner.run(req);
      expect(exit).toMatchObject({ exitCode: 0, timedOut: false, killed: false });
      expect(readFileSync(req.out, 'utf8')).toBe('b\n');
      expect(readFileSync(join(req.execRoot, 'out.txt'), 'utf8')).toBe('made\n');
      const tmp = readFileSync(join(req.execRoot, 'tmp.txt'), 'utf8');
      expect(existsSync(tmp)).toBe(false);
      const args = readFileSync(record, 'utf8').trimEnd().split('\n');
      expect(args[0]).toBe('-p');
      expect(args[1]).toMatch(/^\(version 1\)\\n\(deny default\)\\n/);
      expect(args[1]).toContain(`(allow file-write* (subpath "${req.execRoot}") (subpath "${tmp}")`);
      expect(args.slice(2)).toEqual(req.argv);
    });

    it('passes the exit code through, reports a program sandbox-exec could not start as a spawn error, and fails on a refused profile', async () => {
      expect((await runner.run(request(['/bin/sh', '-c', 'exit 3']))).exitCode).toBe(3);
      expect(await runner.run(request(['/nonexistent/gcc']))).toMatchObject({ exitCode: 127, spawnError: "execvp() of '/nonexistent/gcc' failed: No such file or directory" });
      await expect(runner.run(request(['bad-profile']))).rejects.toThrow(/^could not make the sandbox: unbound variable$/);
    });
  });
});
