// The local executor's warm-up at start: one run of /bin/true through the whole
// local path with the launcher (bare or in bubblewrap), so the first real action
// does not pay for first-run costs; it leaves nothing behind and writes nothing
// to the store.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunExit, RunRequest, Runner } from '../../engine/execution/runner';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { LocalExecutor } from '../../engine/worker/local-executor';
import { ProcessRunner } from '../../engine/worker/process-runner';
import { TreeRemover } from '../../engine/worker/tree-remover';
import { DIGEST_FUNCTIONS } from '../../engine/digest';
import { reapi } from '../../engine/proto';
import { FileLogSink } from '../../engine/execution/log-sink';
import { FakeRunner } from '../execution/fake-runner';

/** Passes everything to the runner it wraps, and remembers what it was asked to run. */
function recording(inner: Runner, name?: string): Runner & { argvs: string[][]; exits: RunExit[]; logs: string[] } {
  const argvs: string[][] = [];
  const exits: RunExit[] = [];
  const logs: string[] = [];
  return {
    argvs,
    exits,
    logs,
    async run(req: RunRequest) {
      argvs.push(req.argv);
      logs.push(req.stdout.path ?? '', req.stderr.path ?? '');
      const exit = await inner.run(req);
      exits.push(exit);
      return exit;
    },
    kill: (id) => inner.kill(id),
    ready: () => inner.ready(),
    capabilities: () => (name ? { ...inner.capabilities(), name } : inner.capabilities()),
    warm: () => inner.warm?.() ?? Promise.resolve(),
    close: () => inner.close(),
  };
}

const root = mkdtempSync(join(tmpdir(), 'kiln-warm-up-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const noTrue = existsSync('/bin/true') ? '' : ' (skipped: the warm-up runs /bin/true, and this machine has none)';

describe.skipIf(noTrue !== '')(`LocalExecutor warm-up at start${noTrue}`, () => {
  it('has run /bin/true through the launcher once when created, leaving the build folder empty and the store untouched', async () => {
    const runner = recording(new ProcessRunner());
    const store = new MemoryBlobStore();
    const buildRoot = join(root, 'process');
    const executor = await LocalExecutor.create({ store, buildRoot, runner });
    try {
      await executor.warmedUp();
      expect(runner.argvs).toEqual([['/bin/true']]);
      expect(runner.exits[0]).toMatchObject({ exitCode: 0, timedOut: false, killed: false });
      expect(readdirSync(buildRoot)).toEqual([]);
      expect(store.stats().blobs).toBe(0);
    } finally {
      await executor.close();
    }
  });

  it('runs it through a bubblewrap runner too, with its log in the actions\' log folder (the one a slot sandbox binds), removed after', async () => {
    // A stand-in that calls itself bubblewrap: what matters here is which runners get a warm-up, and where its log goes.
    const runner = recording(new ProcessRunner(), 'bubblewrap');
    const logDir = join(root, 'logs');
    const executor = await LocalExecutor.create({ store: new MemoryBlobStore(), buildRoot: join(root, 'sandboxed'), runner, logDir });
    try {
      await executor.warmedUp();
      expect(runner.argvs).toEqual([['/bin/true']]);
      expect(runner.logs.every((path) => path.startsWith(`${logDir}/`))).toBe(true);
      expect(readdirSync(logDir)).toEqual([]);
    } finally {
      await executor.close();
    }
  });

  it('leaves the tree remover\'s thread unstarted until the first real action (an idle engine does not hold it)', async () => {
    const remover = new TreeRemover();
    const executor = await LocalExecutor.create({ store: new MemoryBlobStore(), buildRoot: join(root, 'remover'), runner: new ProcessRunner(), remover, deferRemovals: false });
    try {
      await executor.warmedUp();
      await executor.settled();
      expect(remover.started).toBe(false);
      const empty = { hash: DIGEST_FUNCTIONS.sha256.emptyHash, sizeBytes: 0 };
      const outcome = await executor.run(
        {
          id: 'first-real-action',
          instance: '',
          actionDigest: { fn: 'sha256', hash: DIGEST_FUNCTIONS.sha256.emptyHash, size: 0 },
          action: reapi.Action.create({ inputRootDigest: empty }),
          command: reapi.Command.create({ arguments: ['/bin/true'] }),
          timeoutMs: 10_000,
          logs: { stdout: new FileLogSink(join(root, 'first.out')), stderr: new FileLogSink(join(root, 'first.err')) },
        },
        new AbortController().signal,
      );
      expect(outcome.result.exitCode).toBe(0);
      expect(remover.started).toBe(true);
    } finally {
      await executor.close();
    }
  });

  it('runs nothing through a runner that is not the launcher', async () => {
    const fake = new FakeRunner();
    const executor = await LocalExecutor.create({ store: new MemoryBlobStore(), buildRoot: join(root, 'fake'), runner: fake });
    try {
      await executor.warmedUp();
      expect(fake.requests).toEqual([]);
    } finally {
      await executor.close();
    }
  });
});
