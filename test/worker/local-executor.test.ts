// The local worker through its Executor seam: real processes, real files.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { toBlobDigest, DIGEST_FUNCTIONS, type BlobDigest } from '../../engine/digest';
import { GrpcError, Status, unpackDetail } from '../../engine/grpc/status';
import { durationFromMs, reapi, rpc } from '../../engine/proto';
import { DiskBlobStore } from '../../engine/store/disk-store';
import type { BlobStore } from '../../engine/store/blob-store';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import type { Executor, PreparedAction } from '../../engine/execution/executor';
import { FileLogSink } from '../../engine/execution/log-sink';
import { ResultShapingExecutor } from '../../engine/execution/result-shaping-executor';
import { ProcessRunner } from '../../engine/worker/process-runner';
import { LocalExecutor } from '../../engine/worker/local-executor';
import { SMALL_FILE_BYTES } from '../../engine/worker/outputs';
import { command, putBlob, putMessage, putTree, type Tree } from './tree-builder';
import { hasTopFlag, topFolderSupport } from '../util/top-folder-support';

/** What the build folder holds besides Kiln's shared executable copies (.executables): exec roots. */
const execRoots = (dir: string) => readdirSync(dir).filter((name) => name !== '.executables');

const root = mkdtempSync(join(tmpdir(), 'kiln-worker-'));
const topSupport = topFolderSupport(root);
let store: DiskBlobStore;
let runner: ProcessRunner;
/** LocalExecutor with the result shaping every configured executor gets (engine/executor-factory.ts). */
let executor: Executor;
let local: LocalExecutor;
let seq = 0;

beforeAll(async () => {
  store = await DiskBlobStore.open({ dir: join(root, 'cas'), budgetBytes: 1 << 30 });
  runner = new ProcessRunner();
  local = await LocalExecutor.create({ store, buildRoot: join(root, 'build'), runner });
  executor = new ResultShapingExecutor(local);
});
afterAll(async () => {
  await executor?.close();
  await store?.close();
});

const PATH = 'PATH=/usr/bin:/bin';
const env = (...pairs: string[]) =>
  pairs.map((p) => ({ name: p.slice(0, p.indexOf('=')), value: p.slice(p.indexOf('=') + 1) })).sort((a, b) => (a.name < b.name ? -1 : 1));

async function prepare(cmd: reapi.Command, tree: Tree = {}, opts: { timeoutMs?: number; s?: BlobStore } = {}): Promise<PreparedAction> {
  const s = opts.s ?? store;
  const inputRoot = await putTree(s, tree);
  return prepareWithRoot(cmd, inputRoot, opts);
}

async function prepareWithRoot(cmd: reapi.Command, inputRoot: BlobDigest, opts: { timeoutMs?: number; s?: BlobStore } = {}): Promise<PreparedAction> {
  const s = opts.s ?? store;
  const commandDigest = await putMessage(s, reapi.Command, cmd);
  const action = reapi.Action.create({ commandDigest: wire(commandDigest), inputRootDigest: wire(inputRoot) });
  const actionDigest = await putMessage(s, reapi.Action, action);
  const id = `op-${++seq}`;
  const logs = join(root, 'logs');
  mkdirSync(logs, { recursive: true });
  return { id, instance: '', actionDigest, action, command: cmd, timeoutMs: opts.timeoutMs ?? 30_000, logs: { stdout: new FileLogSink(join(logs, `${id}.out`)), stderr: new FileLogSink(join(logs, `${id}.err`)) } };
}

const wire = (d: BlobDigest) => reapi.Digest.create({ hash: d.hash, sizeBytes: d.size });
const blob = (d: reapi.Digest.$Properties | null | undefined) => toBlobDigest(d, DIGEST_FUNCTIONS.sha256);
const text = async (d: reapi.Digest.$Properties | null | undefined) => (await store.readAll(blob(d))).toString();
const run = (a: PreparedAction, signal = new AbortController().signal) => executor.run(a, signal);

/** Running, as opposed to gone or a zombie waiting for whoever adopted it to reap it. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function rejection(p: Promise<unknown>): Promise<GrpcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GrpcError) return err;
    throw err;
  }
  throw new Error('expected a GrpcError');
}

describe('LocalExecutor: running', () => {
  it('runs argv with exactly the Command environment, in the working directory', async () => {
    const a = await prepare(
      command(['sh', '-c', 'env | sort > out/env.txt; pwd > out/pwd.txt; cat data.txt'], {
        environmentVariables: env(PATH, 'FOO=bar baz=qux'),
        workingDirectory: 'pkg',
        outputPaths: ['out/env.txt', 'out/pwd.txt'],
      }),
      { pkg: { 'data.txt': 'hello input' } },
    );
    const r = await run(a);
    expect(r.status).toBe('ok');
    expect(r.result.exitCode).toBe(0);
    const files = Object.fromEntries(await Promise.all(r.result.outputFiles.map(async (f) => [f.path, await text(f.digest)])));
    // Nothing inherited from the engine: only what the Command set (plus what sh itself defines).
    const vars = files['out/env.txt'].trim().split('\n').map((l: string) => l.split('=')[0]);
    expect(vars.filter((v: string) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(v))).toEqual(['FOO', 'PATH']);
    expect(files['out/env.txt']).toContain('FOO=bar baz=qux');
    expect(files['out/pwd.txt'].trim()).toMatch(/\/pkg$/);
    expect(await text(r.result.stdoutDigest)).toBe('hello input');
    expect(r.inputFiles).toBe(1);
  });

  it('reports a non-zero exit as a normal result with stderr captured', async () => {
    const r = await run(await prepare(command(['sh', '-c', 'echo broken >&2; exit 3'], { environmentVariables: env(PATH) })));
    expect(r.status).toBe('ok');
    expect(r.result.exitCode).toBe(3);
    expect(await text(r.result.stderrDigest)).toBe('broken\n');
  });

  it('a program that cannot be started exits 127 with the reason on stderr', async () => {
    const r = await run(await prepare(command(['/no/such/program'])));
    expect(r.result.exitCode).toBe(127);
    expect(await text(r.result.stderrDigest)).toMatch(/could not start "\/no\/such\/program"/);
  });

  it('kills the whole process group on timeout and keeps the output so far', async () => {
    const marker = join(root, `grandchild-${seq}.pid`);
    const a = await prepare(
      command(['sh', '-c', `sleep 300 & echo $! > ${marker}; echo started; sleep 300`], { environmentVariables: env(PATH) }),
      {},
      { timeoutMs: 500 },
    );
    const r = await run(a);
    expect(r.status).toBe('timeout');
    expect(await text(r.result.stdoutDigest)).toBe('started\n');
    const pid = Number((await readFile(marker, 'utf8')).trim());
    await new Promise((res) => setTimeout(res, 300));
    expect(isAlive(pid)).toBe(false); // the background grandchild is gone too
  });

  it('cancels a running action when its signal aborts', async () => {
    const a = await prepare(command(['sleep', '300'], { environmentVariables: env(PATH) }));
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 300);
    const r = await run(a, ctl.signal);
    expect(r.status).toBe('cancelled');
  });

  it('has its launcher running and ready once created, before the first action', async () => {
    const fresh = new ProcessRunner();
    expect(fresh.launcherPid).toBeUndefined();
    const e = await LocalExecutor.create({ store, buildRoot: join(root, 'build-warm'), runner: fresh });
    try {
      const pid = fresh.launcherPid;
      expect(pid).toBeDefined();
      expect(isAlive(pid!)).toBe(true);
      // The first action uses that launcher, not a new one.
      expect((await e.run(await prepare(command(['true'], { environmentVariables: env(PATH) })), new AbortController().signal)).result.exitCode).toBe(0);
      expect(fresh.launcherPid).toBe(pid);
    } finally {
      await e.close();
    }
  });

  it('runs an action with no inputs that prints nothing without reading the store (the empty tree and logs are known)', async () => {
    const reads: string[] = [];
    // The store seam, watched: every read an action costs shows up here.
    const watched = new Proxy(store, {
      get(target, key) {
        const v = Reflect.get(target, key, target);
        if (key === 'read' || key === 'readAll' || key === 'localPath') {
          return (d: BlobDigest, ...rest: unknown[]) => {
            reads.push(`${String(key)} ${d.hash}/${d.size}`);
            return (v as (...a: unknown[]) => unknown).call(target, d, ...rest);
          };
        }
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as BlobStore;
    const quiet = await LocalExecutor.create({ store: watched, buildRoot: join(root, 'build-quiet'), runner: new ProcessRunner() });
    try {
      const a = await prepare(command(['true'], { environmentVariables: env(PATH) }));
      const out = await quiet.run(a, new AbortController().signal);
      expect(out.result.exitCode).toBe(0);
      expect(out.result.stdoutDigest?.sizeBytes ?? 0).toBe(0);
      expect(out.result.stderrDigest?.sizeBytes ?? 0).toBe(0);
      expect(reads).toEqual([]);
      // A tree with an empty folder still stages the folder.
      const b = await prepare(command(['test', '-d', 'empty'], { environmentVariables: env(PATH) }), { empty: {} });
      expect((await quiet.run(b, new AbortController().signal)).result.exitCode).toBe(0);
    } finally {
      await quiet.close().catch(() => undefined);
    }
  });

  it('removes the exec root afterwards, and clears leftovers from a crash at start', async () => {
    await run(await prepare(command(['true'], { environmentVariables: env(PATH) })));
    await local.settled(); // exec roots are removed behind the answer
    expect(execRoots(join(root, 'build'))).toEqual([]);
    const build = join(root, 'build2');
    mkdirSync(join(build, 'op-crashed', 'deep'), { recursive: true });
    writeFileSync(join(build, 'op-crashed', 'deep', 'f'), 'x');
    const e2 = await LocalExecutor.create({ store, buildRoot: build });
    expect(readdirSync(build)).toEqual([]);
    await e2.close();
  });

  const topWhy = topSupport.ok ? '' : ` (skipped: ${topSupport.why})`;
  it.skipIf(!topSupport.ok)(`marks the build folder as a top folder on ext4, so its exec roots spread to roomy block groups${topWhy}`, async () => {
    const build = join(root, 'build-top');
    mkdirSync(build);
    expect(hasTopFlag(build)).toBe(false);
    const e = await LocalExecutor.create({ store, buildRoot: build });
    try {
      expect(hasTopFlag(build)).toBe(true);
    } finally {
      await e.close();
    }
  });

  it('removes exec roots by itself once actions stop finishing for a moment, with no one asking', async () => {
    const build = join(root, 'build-deferred');
    const e = await LocalExecutor.create({ store, buildRoot: build, runner: new ProcessRunner(), deferRemovals: { quietMs: 200, maxRoots: 256, maxBytes: 1 << 30 } });
    try {
      for (let i = 0; i < 3; i++) {
        const a = await prepare(command(['sh', '-c', `echo ${i} > out`], { environmentVariables: env(PATH), outputPaths: ['out'] }));
        expect((await e.run(a, new AbortController().signal)).result.exitCode).toBe(0);
      }
      // Set aside while actions finish one after another (their mkdirs are cheaper with no removals alongside)…
      expect(execRoots(build).length).toBeGreaterThan(0);
      // …and gone after the quiet moment, without settled() or close().
      await vi.waitFor(() => expect(execRoots(build)).toEqual([]), { timeout: 5_000, interval: 50 });
    } finally {
      await e.close();
    }
  });

  it('survives its launcher being killed: the running action fails INTERNAL, the next one runs', async () => {
    const launcherPid = runner.launcherPid!;
    const a = await prepare(command(['sleep', '300'], { environmentVariables: env(PATH) }));
    const pending = rejection(run(a));
    setTimeout(() => process.kill(launcherPid, 'SIGKILL'), 300);
    expect((await pending).code).toBe(Status.INTERNAL);
    const r = await run(await prepare(command(['sh', '-c', 'echo again'], { environmentVariables: env(PATH) })));
    expect(await text(r.result.stdoutDigest)).toBe('again\n');
  });
});

describe('LocalExecutor: outputs', () => {
  it('collects output_paths: files with their x bit, directories as Trees, symlinks as symlinks', async () => {
    const script = [
      'mkdir -p out/tree/sub/deeper out/tree/empty',
      'printf a > out/tree/a.txt',
      'printf run > out/tree/sub/tool && chmod +x out/tree/sub/tool',
      'printf "" > out/tree/sub/deeper/empty-file',
      'ln -s a.txt out/tree/link',
      'printf single > out/file.txt',
      'ln -s file.txt out/alias',
    ].join(' && ');
    const r = await run(
      await prepare(command(['sh', '-c', script], { environmentVariables: env(PATH), outputPaths: ['out/alias', 'out/file.txt', 'out/missing', 'out/tree'] })),
    );
    expect(r.result.outputFiles.map((f) => f.path)).toEqual(['out/file.txt']);
    expect(r.result.outputSymlinks).toEqual([expect.objectContaining({ path: 'out/alias', target: 'file.txt' })]);
    const [dir] = r.result.outputDirectories;
    expect(dir.path).toBe('out/tree');
    const tree = reapi.Tree.decode(await store.readAll(blob(dir.treeDigest)));
    expect(tree.root!.files.map((f) => f.name)).toEqual(['a.txt']);
    expect(tree.root!.directories.map((d) => d.name)).toEqual(['empty', 'sub']);
    expect(tree.root!.symlinks).toEqual([expect.objectContaining({ name: 'link', target: 'a.txt' })]);
    const sub = tree.children.find((c) => c.files.some((f) => f.name === 'tool'))!;
    expect(sub.files[0].isExecutable).toBe(true);
    expect(sub.directories.map((d) => d.name)).toEqual(['deeper']);
    // The empty directory is in the Tree too (as an empty Directory message), and every file blob is stored.
    expect(tree.children.some((c) => c.files.length === 0 && c.directories.length === 0 && c.symlinks.length === 0)).toBe(true);
    for (const c of [tree.root!, ...tree.children]) for (const f of c.files) expect(await store.has(blob(f.digest))).toBe(true);
    // The root Directory is stored on its own too, so GetTree works on it.
    expect(await store.has(blob(dir.rootDirectoryDigest))).toBe(true);
    expect(r.outputs.find((o) => o.path === 'out/tree')).toMatchObject({ kind: 'directory', bytes: 4 });
  });

  it('stores outputs at, just over and well over the size read in one go, with digests of their exact bytes', async () => {
    const sizes = [0, 1, SMALL_FILE_BYTES, SMALL_FILE_BYTES + 1, 3 * SMALL_FILE_BYTES + 17];
    // Different bytes per file (its index), so a mix-up between files cannot pass.
    const script = sizes.map((n, i) => `head -c ${n} /dev/zero | tr '\\0' '${String.fromCharCode(97 + i)}' > f${i}`).join(' && ');
    const r = await run(
      await prepare(command(['sh', '-c', `${script} && printf logged`], { environmentVariables: env(PATH), outputPaths: sizes.map((_, i) => `f${i}`) })),
    );
    expect(r.result.exitCode).toBe(0);
    expect(r.result.outputFiles.map((f) => f.path)).toEqual(sizes.map((_, i) => `f${i}`));
    for (const [i, f] of r.result.outputFiles.entries()) {
      const expected = Buffer.alloc(sizes[i], String.fromCharCode(97 + i));
      expect(Number(f.digest!.sizeBytes)).toBe(sizes[i]);
      expect(f.digest!.hash).toBe(createHash('sha256').update(expected).digest('hex'));
      expect((await store.readAll(blob(f.digest))).equals(expected)).toBe(true);
    }
    expect(await text(r.result.stdoutDigest)).toBe('logged');
  });

  it('honours the v2.0 output_files/output_directories fields and reports file symlinks there', async () => {
    const r = await run(
      await prepare(
        command(['sh', '-c', 'mkdir -p gen/d && printf x > gen/d/x && printf f > gen/f && ln -s f gen/l'], {
          environmentVariables: env(PATH),
          outputFiles: ['gen/f', 'gen/l'],
          outputDirectories: ['gen/d'],
        }),
      ),
    );
    expect(r.result.outputFiles.map((f) => f.path)).toEqual(['gen/f']);
    expect(r.result.outputDirectories.map((d) => d.path)).toEqual(['gen/d']);
    expect(r.result.outputFileSymlinks.map((s) => s.path)).toEqual(['gen/l']);
    expect(r.result.outputSymlinks).toEqual([]);
  });

  it('creates the parent folders of every output before running', async () => {
    const r = await run(await prepare(command(['sh', '-c', 'printf ok > a/b/c/out.txt'], { environmentVariables: env(PATH), outputPaths: ['a/b/c/out.txt'] })));
    expect(r.result.exitCode).toBe(0);
    expect(await text(r.result.outputFiles[0].digest)).toBe('ok');
  });
});

describe('LocalExecutor: inputs', () => {
  it('stages nested files, executables, empty directories and symlinks', async () => {
    const r = await run(
      await prepare(
        command(['sh', '-c', 'test -x bin/tool && test -d empty && cat link && ./bin/tool'], { environmentVariables: env(PATH) }),
        { bin: { tool: { content: '#!/bin/sh\necho tool-ran\n', executable: true } }, empty: {}, 'f.txt': 'via-link ', link: { symlink: 'f.txt' } },
      ),
    );
    expect(r.result.exitCode).toBe(0);
    expect(await text(r.result.stdoutDigest)).toBe('via-link tool-ran\n');
  });

  it('names every missing input blob in a PreconditionFailure', async () => {
    const mem = new MemoryBlobStore();
    const ghost1 = { hash: 'a'.repeat(64), sizeBytes: 3 };
    const ghost2 = { hash: 'b'.repeat(64), sizeBytes: 4 };
    const ghostDir = { hash: 'c'.repeat(64), sizeBytes: 10 };
    const rootDir = await putMessage(
      mem,
      reapi.Directory,
      reapi.Directory.create({
        files: [reapi.FileNode.create({ name: 'x', digest: ghost1 }), reapi.FileNode.create({ name: 'y', digest: ghost2 })],
        directories: [reapi.DirectoryNode.create({ name: 'sub', digest: ghostDir })],
      }),
    );
    const exec = await LocalExecutor.create({ store: mem, buildRoot: join(root, 'build-mem') });
    try {
      const a = await prepareWithRoot(command(['true']), rootDir, { s: mem });
      const err = await rejection(exec.run(a, new AbortController().signal));
      expect(err.code).toBe(Status.FAILED_PRECONDITION);
      const pf = unpackDetail(rpc.PreconditionFailure, err.toStatus());
      expect(pf!.violations.map((v) => `${v.type} ${v.subject}`).sort()).toEqual(
        [`MISSING blobs/${'a'.repeat(64)}/3`, `MISSING blobs/${'b'.repeat(64)}/4`, `MISSING blobs/${'c'.repeat(64)}/10`].sort(),
      );
    } finally {
      await exec.close();
    }
  });

  it.each([
    ['a name with a slash', reapi.Directory.create({ files: [{ name: 'a/b', digest: null }] })],
    ['a ".." name', reapi.Directory.create({ directories: [{ name: '..', digest: null }] })],
    ['unsorted files', reapi.Directory.create({ files: [{ name: 'b' }, { name: 'a' }] })],
    ['a name used twice', reapi.Directory.create({ files: [{ name: 'a' }], directories: [{ name: 'a' }] })],
    ['an absolute symlink', reapi.Directory.create({ symlinks: [{ name: 'l', target: '/etc/passwd' }] })],
    ['a symlink escaping the root', reapi.Directory.create({ symlinks: [{ name: 'l', target: '../../outside' }] })],
  ])('refuses a hostile tree (%s) with INVALID_ARGUMENT and writes nothing', async (_what, dir) => {
    const empty = await putBlob(store, '');
    for (const f of dir.files) f.digest ??= wire(empty);
    for (const d of dir.directories) d.digest ??= wire(await putMessage(store, reapi.Directory, reapi.Directory.create()));
    const rootDir = await putMessage(store, reapi.Directory, dir);
    const a = await prepareWithRoot(command(['true']), rootDir);
    const err = await rejection(run(a));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.message).toMatch(/input tree/);
    await local.settled(); // exec roots are removed behind the answer
    expect(execRoots(join(root, 'build'))).toEqual([]);
  });

  // The Execution service asks validateCommand once, before queuing (a command is validated once).
  it.each([['/abs/out'], ['../escape'], ['a/../../b'], ['./x']])('refuses the output path %s before running', async (path) => {
    const marker = join(root, `ran-${seq}`);
    const a = await prepare(command(['sh', '-c', `touch ${marker}`], { environmentVariables: env(PATH), outputPaths: [path] }));
    let err: unknown;
    try {
      executor.validateCommand(a.command);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GrpcError);
    expect((err as GrpcError).code).toBe(Status.INVALID_ARGUMENT);
    expect(existsSync(marker)).toBe(false);
  });

  it('hard-links inputs from the store, and drops a blob an action wrote through its link', async () => {
    const content = `precious ${Date.now()}`;
    const a = await prepare(command(['sh', '-c', 'stat -c %h data.txt; echo corrupted > data.txt'], { environmentVariables: env(PATH) }), { 'data.txt': content });
    const d = await putBlob(store, content);
    const r = await run(a);
    expect(Number((await text(r.result.stdoutDigest)).trim())).toBeGreaterThanOrEqual(2); // shares the store's inode
    expect(r).toMatchObject({ cacheable: false, notCacheableReason: 'the action modified its input(s) data.txt' });
    // The corrupted blob is no longer served: a client will upload it again.
    expect(await store.has(d)).toBe(false);
    const again = await putBlob(store, content);
    expect((await store.readAll(again)).toString()).toBe(content);
    await store.writeOutFiles(); // a small blob's file follows its acknowledgement shortly
    expect((await stat(store.pathOf(again))).mode & 0o777).toBe(0o444);
  });
});

describe('LocalExecutor: timeouts from the Action', () => {
  it('uses the prepared timeout (already clamped by the scheduler)', async () => {
    const a = await prepare(command(['sleep', '5'], { environmentVariables: env(PATH) }), {}, { timeoutMs: 200 });
    a.action.timeout = durationFromMs(200);
    expect((await run(a)).status).toBe('timeout');
  });
});
