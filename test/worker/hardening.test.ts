// The worker against actions and trees that try to reach past the exec root or
// corrupt the store through a shared inode. Real processes, a real disk store.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, type BlobDigest } from '../../engine/digest';
import { GrpcError, Status } from '../../engine/grpc/status';
import { reapi } from '../../engine/proto';
import { DiskBlobStore } from '../../engine/store/disk-store';
import type { ExecutionOutcome, Executor, PreparedAction } from '../../engine/execution/executor';
import { FileLogSink } from '../../engine/execution/log-sink';
import { ResultShapingExecutor } from '../../engine/execution/result-shaping-executor';
import { ProcessRunner } from '../../engine/worker/process-runner';
import { checkSymlinksResolveInside } from '../../engine/worker/input-tree';
import { LocalExecutor } from '../../engine/worker/local-executor';
import { command, putBlob, putMessage, putTree, type Tree } from './tree-builder';

/** What the build folder holds besides Kiln's shared executable copies (.executables): exec roots. */
const execRoots = (dir: string) => readdirSync(dir).filter((name) => name !== '.executables');

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'kiln-worker-hard-'));
const buildRoot = join(root, 'build');
let store: DiskBlobStore;
let runner: ProcessRunner;
/** LocalExecutor with the result shaping every configured executor gets (engine/executor-factory.ts). */
let executor: Executor;
let local: LocalExecutor;
let seq = 0;

beforeAll(async () => {
  store = await DiskBlobStore.open({ dir: join(root, 'cas'), budgetBytes: 1 << 30 });
  runner = new ProcessRunner();
  local = await LocalExecutor.create({ store, buildRoot, runner });
  executor = new ResultShapingExecutor(local);
});
afterAll(async () => {
  await executor?.close();
  await store?.close();
  rmSync(root, { recursive: true, force: true });
});

const PATH = [{ name: 'PATH', value: '/usr/bin:/bin' }];
const wire = (d: BlobDigest) => reapi.Digest.create({ hash: d.hash, sizeBytes: d.size });

const prepare = async (cmd: reapi.Command, tree: Tree) => prepareWithRoot(cmd, await putTree(store, tree));

async function prepareWithRoot(cmd: reapi.Command, inputRoot: BlobDigest): Promise<PreparedAction> {
  const action = reapi.Action.create({ commandDigest: wire(await putMessage(store, reapi.Command, cmd)), inputRootDigest: wire(inputRoot) });
  const actionDigest = await putMessage(store, reapi.Action, action);
  const id = `hard-${++seq}`;
  mkdirSync(join(root, 'logs'), { recursive: true });
  return { id, instance: '', actionDigest, action, command: cmd, timeoutMs: 60_000, logs: { stdout: new FileLogSink(join(root, 'logs', `${id}.out`)), stderr: new FileLogSink(join(root, 'logs', `${id}.err`)) } };
}

const run = (a: PreparedAction, signal = new AbortController().signal) => executor.run(a, signal);

async function rejection(p: Promise<unknown>): Promise<GrpcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GrpcError) return err;
    throw err;
  }
  throw new Error('expected a GrpcError');
}

/** Whatever the store now serves under `d` (undefined when the blob was dropped). */
function served(d: BlobDigest): string | undefined {
  const p = store.pathOf(d);
  return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
}

describe('outputs never follow a symlink out of the exec root', () => {
  it('omits an output reached through a symlink the action pointed outside', async () => {
    const outside = join(root, 'secret-dir');
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(outside, 'secret.txt'), 'not for the CAS');
    const a = await prepare(
      command(['sh', '-c', `rm -rf out && ln -s ${outside} out`], { environmentVariables: PATH, outputPaths: ['out/secret.txt', 'out'] }),
      {},
    );
    const r = await run(a);
    expect(r.result.exitCode).toBe(0);
    // The symlink itself is reported as what it is; nothing behind it is read.
    expect(r.result.outputFiles).toEqual([]);
    expect(r.result.outputSymlinks.map((s) => [s.path, s.target])).toEqual([['out', outside]]);
    expect(await store.has(await digestOf(Buffer.from('not for the CAS')))).toBe(false);
  });

  it('omits an output whose middle folder the action turned into a symlink inside the exec root', async () => {
    const a = await prepare(
      command(['sh', '-c', 'mkdir -p other/bin && echo moved > other/bin/out.txt && rm -rf a/b && ln -s ../other a/b'], {
        environmentVariables: PATH,
        outputPaths: ['a/b/bin/out.txt', 'a/kept.txt'],
      }),
      { a: { b: { bin: {} }, 'kept.txt': 'kept' } },
    );
    const r = await run(a);
    expect(r.result.exitCode).toBe(0);
    // Only the output whose path holds no symlink is collected.
    expect(r.result.outputFiles.map((f) => f.path)).toEqual(['a/kept.txt']);
  });

  it('collects outputs when the build root itself is reached through a symlink', async () => {
    const real = join(root, 'real-build');
    mkdirSync(real, { recursive: true });
    const viaLink = join(root, 'build-link');
    symlinkSync(real, viaLink);
    const linked = new ResultShapingExecutor(await LocalExecutor.create({ store, buildRoot: viaLink, runner }));
    const a = await prepare(command(['sh', '-c', 'echo deep > bazel-out/bin/out.txt'], { environmentVariables: PATH, outputPaths: ['bazel-out/bin/out.txt'] }), {});
    const r = await linked.run(a, new AbortController().signal);
    expect(r.result.exitCode).toBe(0);
    expect(r.result.outputFiles.map((f) => f.path)).toEqual(['bazel-out/bin/out.txt']);
    expect(r.result.outputFiles[0].digest?.hash).toBe((await digestOf(Buffer.from('deep\n'))).hash);
  });

  it('refuses an output whose parent is an input symlink, creating nothing through it', async () => {
    const a = await prepare(command(['true'], { environmentVariables: PATH, outputPaths: ['link/new/out.txt'] }), {
      real: {},
      link: { symlink: 'real' },
    });
    const err = await rejection(run(a));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.message).toMatch(/"link" is a symlink/);
    await local.settled(); // exec roots are removed behind the answer
    expect(execRoots(buildRoot)).toEqual([]);
  });

  it('refuses an output whose parent is an input file, in the working directory too', async () => {
    const a = await prepare(
      command(['true'], { environmentVariables: PATH, workingDirectory: 'wd', outputPaths: ['ok/dir/x', 'f.txt/out.txt'] }),
      { wd: { 'f.txt': 'x', ok: {} } },
    );
    const err = await rejection(run(a));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.message).toMatch(/output "f.txt\/out.txt": its parent "f.txt" is a file/);
    await local.settled(); // exec roots are removed behind the answer
    expect(execRoots(buildRoot)).toEqual([]);
  });
});

describe('reading an output the engine expects to be a small file', () => {
  it('reads a fifo swapped in for it as empty instead of waiting for a writer', () => {
    // In a child process: a blocking open would hold its event loop (and this test) forever.
    const fifo = join(root, 'swapped-in-fifo');
    execFileSync('mkfifo', [fifo]);
    const script = `require('${join(ROOT, 'engine/worker/no-follow.ts')}').readSmallNoFollow(process.argv[1], 10).then((b) => process.stdout.write(String(b.length)))`;
    const out = spawnSync(process.execPath, ['--import', 'tsx', '-e', script, fifo], { encoding: 'utf8', timeout: 20_000 });
    expect(out.signal, 'the read waited for a writer until the timeout').toBeNull();
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe('0');
  });
});

describe('the working directory', () => {
  it.each([
    ['missing from the input tree', 'nowhere'],
    ['a symlink in the input tree', 'link'],
  ])('is refused when %s, before anything is staged', async (_what, wd) => {
    const marker = join(root, `wd-ran-${++seq}`);
    const a = await prepare(command(['sh', '-c', `touch ${marker}`], { environmentVariables: PATH, workingDirectory: wd }), {
      real: { 'f.txt': 'x' },
      link: { symlink: 'real' },
    });
    const err = await rejection(run(a));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.message).toMatch(new RegExp(`working_directory "${wd}" is not a directory in the input root`));
    expect(existsSync(marker)).toBe(false);
    await local.settled(); // exec roots are removed behind the answer
    expect(execRoots(buildRoot)).toEqual([]);
  });
});

describe('input symlinks are resolved through the tree', () => {
  it('refuses a target that looks inside but climbs out through another symlink, and writes nothing outside', async () => {
    // "s" -> "." makes "s/s/x/../../.." two levels above the root, though it normalises to "".
    const marker = `escaped-${process.pid}`;
    const a = await prepare(command(['true'], { environmentVariables: PATH, outputPaths: [`q/${marker}/f`] }), {
      s: { symlink: '.' },
      x: {},
      q: { symlink: 's/s/x/../../..' },
    });
    const err = await rejection(run(a));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.message).toMatch(/symlink "q" .* resolves outside the input root/);
    expect(existsSync(join(root, marker))).toBe(false);
    await local.settled(); // exec roots are removed behind the answer
    expect(execRoots(buildRoot)).toEqual([]);
  });

  it('accepts targets that go through symlinks and stay inside, and symlink loops', () => {
    const plan = {
      directories: ['', 'x', 'x/y', 'd'],
      symlinks: [
        { path: 's', target: 'x/y' },
        { path: 'up', target: 's/..' }, // x/y/.. = x
        { path: 'd/back', target: '../s/../..' }, // x/y/../.. = the root
        { path: 'a', target: 'b' },
        { path: 'b', target: 'a/..' }, // a loop: the kernel says ELOOP
        { path: 'dangling', target: 'nowhere/../../..' }, // ENOENT before it could climb
      ],
    };
    expect(() => checkSymlinksResolveInside(plan)).not.toThrow();
    plan.symlinks.push({ path: 'd/out', target: '../s/../../..' });
    expect(() => checkSymlinksResolveInside(plan)).toThrow(/"d\/out"/);
  });

  it('refuses a tree nested deeper than a path can be, with INVALID_ARGUMENT', async () => {
    let digest = await putMessage(store, reapi.Directory, reapi.Directory.create());
    for (let i = 0; i < 1600; i++) {
      digest = await putMessage(store, reapi.Directory, reapi.Directory.create({ directories: [{ name: 'dd', digest: wire(digest) }] }));
    }
    const err = await rejection(run(await prepareWithRoot(command(['true'], { environmentVariables: PATH }), digest)));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.message).toMatch(/nested too deeply/);
    await local.settled(); // exec roots are removed behind the answer
    expect(execRoots(buildRoot)).toEqual([]);
  });

  it('answers a malformed digest inside the tree with INVALID_ARGUMENT', async () => {
    const dir = reapi.Directory.create({ directories: [{ name: 'sub', digest: { hash: 'zz', sizeBytes: 1 } }] });
    const err = await rejection(run(await prepareWithRoot(command(['true'], { environmentVariables: PATH }), await putMessage(store, reapi.Directory, dir))));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.message).toMatch(/directory "sub" digest/);
  });
});

describe('hard-linked inputs', () => {
  it('catches a write through the link even when the action then replaces the file', async () => {
    const content = `precious ${++seq}`;
    const d = await putBlob(store, content);
    const r = await run(
      await prepare(command(['sh', '-c', 'echo corrupted >> data.txt; rm -f data.txt; echo fine > data.txt'], { environmentVariables: PATH }), {
        'data.txt': content,
      }),
    );
    expect(r).toMatchObject({ cacheable: false, notCacheableReason: 'the action modified its input(s) data.txt' });
    expect(served(d)).toBeUndefined();
  });

  it('catches a same-size rewrite whose mtime was put back', async () => {
    const content = `precious ${++seq}`;
    const d = await putBlob(store, content);
    const evil = 'X'.repeat(content.length);
    const r = await run(
      await prepare(command(['sh', '-c', `m=$(stat -c %y data.txt); printf ${evil} > data.txt; touch -d "$m" data.txt`], { environmentVariables: PATH }), {
        'data.txt': content,
      }),
    );
    expect(r).toMatchObject({ cacheable: false, notCacheableReason: 'the action modified its input(s) data.txt' });
    expect(served(d)).toBeUndefined();
  });

  it('does not mistake another action linking the same blob for tampering', async () => {
    const content = `shared ${++seq}`;
    const d = await putBlob(store, content);
    const go = join(root, `go-${seq}`);
    // A holds its link while B links and unlinks the same inode (which moves its ctime).
    const a = await prepare(command(['sh', '-c', `while [ ! -e ${go} ]; do sleep 0.05; done; cat shared.txt`], { environmentVariables: PATH }), {
      'shared.txt': content,
    });
    let running!: () => void;
    const aRunning = new Promise<void>((res) => (running = res));
    const aDone = executor.run(a, new AbortController().signal, { onStage: (s) => s === 'running' && running() });
    await aRunning;
    const b = await run(await prepare(command(['cat', 'shared.txt'], { environmentVariables: PATH }), { 'shared.txt': content }));
    writeFileSync(go, '');
    const ra = await aDone;
    expect(b.cacheable).toBe(true);
    expect(ra.cacheable).toBe(true);
    expect(served(d)).toBe(content);
  });
});

describe('hard-linked inputs shared by concurrent actions', () => {
  /** Starts an action and resolves once its process runs; `done` is its outcome (wrapped, so awaiting start does not wait for it). */
  async function start(a: PreparedAction): Promise<{ done: Promise<ExecutionOutcome> }> {
    let running!: () => void;
    const started = new Promise<void>((res) => (running = res));
    const done = executor.run(a, new AbortController().signal, { onStage: (s) => s === 'running' && running() });
    await Promise.race([started, done]);
    return { done };
  }
  const waitForFile = async (p: string) => waitFor(() => existsSync(p));
  const ledgerSize = () => (local as unknown as { links: { size: number } }).links.size;
  // Both actions use one stored input root: storing the blob again would rename a fresh inode into the store.
  const sharedInput = async (content: string) => putTree(store, { 'data.txt': content });

  it('flags an action that linked an inode another action had already corrupted', async () => {
    const content = `shared ${++seq}`;
    const input = await sharedInput(content);
    const d = await digestOf(Buffer.from(content));
    const [corrupted, go] = [join(root, `corrupted-${seq}`), join(root, `go-${seq}`)];
    const a = await start(
      await prepareWithRoot(
        command(['sh', '-c', `echo corrupted >> data.txt; touch ${corrupted}; while [ ! -e ${go} ]; do sleep 0.05; done`], { environmentVariables: PATH }),
        input,
      ),
    );
    await waitForFile(corrupted);
    // B links the already-changed inode and finishes while A still runs: its own before/after look the same.
    const b = await run(await prepareWithRoot(command(['cat', 'data.txt'], { environmentVariables: PATH }), input));
    writeFileSync(go, '');
    expect(b).toMatchObject({ cacheable: false, notCacheableReason: 'the action modified its input(s) data.txt' });
    expect((await a.done)).toMatchObject({ cacheable: false, notCacheableReason: 'the action modified its input(s) data.txt' });
    expect(served(d)).toBeUndefined();
    expect(ledgerSize()).toBe(0);
  });

  it('flags a later holder of an inode changed stealthily (same size, mtime put back)', async () => {
    const content = `shared ${++seq}`;
    const input = await sharedInput(content);
    const d = await digestOf(Buffer.from(content));
    const evil = 'Y'.repeat(content.length);
    const [changed, goA, bRunning, goB] = ['changed', 'goA', 'bRunning', 'goB'].map((n) => join(root, `${n}-${seq}`));
    // A rewrites the file in place with the same size and puts the mtime back, then waits.
    const a = await start(
      await prepareWithRoot(
        command(
          ['sh', '-c', `m=$(stat -c %y data.txt); printf ${evil} > data.txt; touch -d "$m" data.txt; touch ${changed}; while [ ! -e ${goA} ]; do sleep 0.05; done`],
          { environmentVariables: PATH },
        ),
        input,
      ),
    );
    await waitForFile(changed);
    // B links after the change (size, mtime and mode match A's baseline) and is still running when A drops the blob.
    const b = await start(
      await prepareWithRoot(command(['sh', '-c', `touch ${bRunning}; while [ ! -e ${goB} ]; do sleep 0.05; done`], { environmentVariables: PATH }), input),
    );
    await waitForFile(bRunning);
    writeFileSync(goA, '');
    expect((await a.done)).toMatchObject({ cacheable: false, notCacheableReason: 'the action modified its input(s) data.txt' });
    writeFileSync(goB, '');
    expect((await b.done)).toMatchObject({ cacheable: false, notCacheableReason: 'the action modified its input(s) data.txt' });
    expect(served(d)).toBeUndefined();
    expect(ledgerSize()).toBe(0);
  });
});

describe('the launcher', () => {
  it('takes the running action group down with it when it dies', async () => {
    const marker = join(root, `leader-${++seq}.pid`);
    const a = await prepare(command(['sh', '-c', `echo $$ > ${marker}; exec sleep 300`], { environmentVariables: PATH }), {});
    let running!: () => void;
    const started = new Promise<void>((res) => (running = res));
    const pending = rejection(executor.run(a, new AbortController().signal, { onStage: (s) => s === 'running' && running() }));
    await started;
    while (!existsSync(marker) || !readFileSync(marker, 'utf8').trim()) await new Promise((res) => setTimeout(res, 20));
    const launcherPid = runner.launcherPid!;
    process.kill(launcherPid, 'SIGKILL');
    expect((await pending).code).toBe(Status.INTERNAL);
    const pid = Number(readFileSync(marker, 'utf8').trim());
    await waitFor(() => !isAlive(pid));
    expect(isAlive(pid)).toBe(false);
  });
});

/** Running, as opposed to gone or a zombie waiting to be reaped. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Polls without asserting on timing; the test's own timeout bounds it. */
async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((res) => setTimeout(res, 25));
}
