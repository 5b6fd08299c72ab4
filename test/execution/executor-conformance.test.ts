// One suite, every executor stack, through the public run() API only: the
// LocalExecutor on each Runner, bare and under the decorators the factory adds.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBlobDigest, DIGEST_FUNCTIONS, type BlobDigest } from '../../engine/digest';
import type { Executor, PreparedAction } from '../../engine/execution/executor';
import { FileLogSink } from '../../engine/execution/log-sink';
import type { Runner } from '../../engine/execution/runner';
import { decorateExecutor } from '../../engine/executor-factory';
import { msFromTimestamp, reapi } from '../../engine/proto';
import { MemoryActionCacheStore } from '../../engine/store/action-cache-store';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { LocalExecutor } from '../../engine/worker/local-executor';
import { ProcessRunner } from '../../engine/worker/process-runner';
import { putMessage, putTree } from '../worker/tree-builder';
import { FakeRunner, asProcessArgv } from './fake-runner';

const RUNNERS: { runner: string; make: () => Runner; argv: (logical: string[]) => string[] }[] = [
  { runner: 'ProcessRunner', make: () => new ProcessRunner(), argv: asProcessArgv },
  { runner: 'FakeRunner', make: () => new FakeRunner(), argv: (a) => a },
];
const STACKS = RUNNERS.flatMap((r) => [
  { ...r, decorated: false, name: `LocalExecutor + ${r.runner}` },
  { ...r, decorated: true, name: `decorators ▸ LocalExecutor + ${r.runner}` },
]);

describe.each(STACKS)('Executor conformance: $name', ({ make, argv, decorated }) => {
  let root: string;
  let store: MemoryBlobStore;
  let actionCache: MemoryActionCacheStore;
  let executor: Executor;
  let seq = 0;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'kiln-exec-conf-'));
    mkdirSync(join(root, 'logs'));
    store = new MemoryBlobStore();
    actionCache = new MemoryActionCacheStore();
    const local = await LocalExecutor.create({ store, buildRoot: join(root, 'build'), runner: make(), slots: 3, workerName: 'kiln@test' });
    executor = decorated ? decorateExecutor(local, { actionCache, log: () => {} }) : local;
  });
  afterAll(async () => {
    await executor.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function prepare(logical: string[], command: reapi.Command.$Properties = {}, action: reapi.Action.$Properties = {}): Promise<PreparedAction> {
    const cmd = reapi.Command.create({ arguments: argv(logical), ...command });
    const inputRoot = await putTree(store, {});
    const wire = (d: BlobDigest) => reapi.Digest.create({ hash: d.hash, sizeBytes: d.size });
    const act = reapi.Action.create({ commandDigest: wire(await putMessage(store, reapi.Command, cmd)), inputRootDigest: wire(inputRoot), ...action });
    const id = `conf-${++seq}`;
    return {
      id,
      instance: '',
      actionDigest: await putMessage(store, reapi.Action, act),
      action: act,
      command: cmd,
      timeoutMs: 30_000,
      queuedAt: Date.now(),
      logs: { stdout: new FileLogSink(join(root, 'logs', `${id}.out`)), stderr: new FileLogSink(join(root, 'logs', `${id}.err`)) },
    };
  }
  const run = (a: PreparedAction) => executor.run(a, new AbortController().signal);
  const text = async (d: reapi.Digest.$Properties | null | undefined) => (await store.readAll(toBlobDigest(d, DIGEST_FUNCTIONS.sha256))).toString();

  it('validates Commands and reports its capacity', async () => {
    expect(() => executor.validateCommand(reapi.Command.create({ arguments: ['x'], outputPaths: ['../out'] }))).toThrow(/output_paths/);
    expect(() => executor.validateCommand(reapi.Command.create({ arguments: ['x'], outputPaths: ['out'] }))).not.toThrow();
    expect(executor.capacity()).toEqual({ slots: 3, ready: true });
  });

  it('runs an action: exit code, stdout in the CAS, outputs collected, a cacheable ok', async () => {
    const a = await prepare(['write', 'out/f.txt', 'made'], { outputPaths: ['out/f.txt'] });
    const r = await run(a);
    expect(r).toMatchObject({ status: 'ok', cacheable: true });
    expect(r.result.exitCode).toBe(0);
    expect(r.result.outputFiles.map((f) => f.path)).toEqual(['out/f.txt']);
    expect(await text(r.result.outputFiles[0].digest)).toBe('made');
    const echoed = await run(await prepare(['out', 'said']));
    expect(await text(echoed.result.stdoutDigest)).toBe('said');
    expect((await run(await prepare(['exit', '4']))).result.exitCode).toBe(4);
  });

  it('reports v2.1 output symlinks in output_symlinks', async () => {
    const r = await run(await prepare(['symlink', 'target', 'link'], { outputPaths: ['link'] }));
    expect(r.result.outputSymlinks.map((s) => [s.path, s.target])).toEqual([['link', 'target']]);
    expect(r.result.outputFileSymlinks).toEqual([]);
  });

  if (decorated) {
    it('shapes v2.0 results: a declared output file that is a symlink goes to output_file_symlinks', async () => {
      const r = await run(await prepare(['symlink', 'target', 'link'], { outputFiles: ['link'] }));
      expect(r.result.outputFileSymlinks.map((s) => s.path)).toEqual(['link']);
      expect(r.result.outputSymlinks).toEqual([]);
    });

    it('fills execution metadata in order, from queued to worker completed', async () => {
      const a = await prepare(['exit', '0']);
      const m = (await run(a)).result.executionMetadata!;
      expect(m.worker).toBe('kiln@test');
      const order = [m.queuedTimestamp, m.workerStartTimestamp, m.inputFetchStartTimestamp, m.executionStartTimestamp, m.executionCompletedTimestamp, m.outputUploadCompletedTimestamp, m.workerCompletedTimestamp].map((t) => msFromTimestamp(t) ?? 0);
      expect(order.map((t) => t > 0)).toEqual([true, true, true, true, true, true, true]);
      expect([...order].sort((x, y) => x - y)).toEqual(order);
    });

    it('caches a successful result, and never a failure or a do_not_cache action', async () => {
      const ok = await prepare(['exit', '0'], { environmentVariables: [{ name: 'SALT', value: 'ok' }] });
      const failed = await prepare(['exit', '1']);
      const uncached = await prepare(['exit', '0'], { environmentVariables: [{ name: 'SALT', value: 'dnc' }] }, { doNotCache: true });
      for (const a of [ok, failed, uncached]) await run(a);
      expect(await actionCache.get('', ok.actionDigest)).toBeDefined();
      expect(await actionCache.get('', failed.actionDigest)).toBeUndefined();
      expect(await actionCache.get('', uncached.actionDigest)).toBeUndefined();
    });
  }
});
