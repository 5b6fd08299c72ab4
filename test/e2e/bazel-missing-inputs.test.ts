// Real Bazel against a Kiln whose CAS loses an input between Bazel's
// FindMissingBlobs and the run (as eviction can): the executor drops one input
// blob of every action before its first run, so each first attempt ends in
// ExecuteResponse.status FAILED_PRECONDITION with a PreconditionFailure
// (MISSING blobs/{hash}/{size}). Bazel must re-upload and execute again, and
// the build must succeed with every action run remotely.
//
// Needs a Bazel (see bazel-exec.test.ts); a version that is not installed is skipped.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../engine/config';
import { DIGEST_FUNCTIONS } from '../../engine/digest';
import { Engine } from '../../engine/engine';
import { GrpcError, Status } from '../../engine/grpc/status';
import { rpc, unpackAny } from '../../engine/proto';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { ExecutorDecorator, type ExecutionHooks, type PreparedAction } from '../../engine/execution/executor';
import { inputDigest, planInputTree } from '../../engine/worker/input-tree';
import { LocalExecutor } from '../../engine/worker/local-executor';
import { BASIC_TARGETS, BazelWorkspace, executedKinds, expectBasicOutputs, bazelsToTest, parseProcessSummary } from './harness';

const BAZELS = bazelsToTest();
const LONG = 10 * 60_000;

/** A LocalExecutor that deletes one non-empty input blob from the store before an action's first run. */
class DroppingExecutor extends ExecutorDecorator {
  private readonly seen = new Set<string>();
  /** Action digests whose input was dropped; each must run again. */
  readonly dropped = new Set<string>();
  /** Runs per action digest. */
  readonly runs = new Map<string, number>();
  /** What the executor threw: the scheduler turns these into ExecuteResponse.status. */
  readonly errors: unknown[] = [];

  constructor(
    private readonly store: DiskBlobStore,
    inner: LocalExecutor,
  ) {
    super(inner);
  }

  override async run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks) {
    const key = action.actionDigest.hash;
    this.runs.set(key, (this.runs.get(key) ?? 0) + 1);
    if (!this.seen.has(key)) {
      this.seen.add(key);
      const root = inputDigest(action.action.inputRootDigest, DIGEST_FUNCTIONS[action.actionDigest.fn], 'input_root_digest');
      const victim = (await planInputTree(this.store, root)).files.find((f) => f.digest.size > 0);
      if (victim) {
        await this.store.delete(victim.digest);
        this.dropped.add(key);
      }
    }
    try {
      return await this.inner.run(action, signal, hooks);
    } catch (err) {
      this.errors.push(err);
      throw err;
    }
  }
}

for (const { label, install } of BAZELS) {
  describe.skipIf(!install)(`${label} when inputs vanish from the CAS before the run${install ? '' : ` (skipped: ${label} is not installed here; .ci/run installs it)`}`, () => {
    let dataDir: string;
    let engine: Engine;
    let executor: DroppingExecutor;
    let ws: BazelWorkspace;

    beforeAll(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'kiln-e2e-missing-'));
      const store = await DiskBlobStore.open({ dir: join(dataDir, 'cas'), budgetBytes: 1024 ** 3 });
      executor = new DroppingExecutor(store, await LocalExecutor.create({ store, buildRoot: join(dataDir, 'build') }));
      engine = await Engine.start({ config: { ...defaultConfig(), port: 0, httpPort: 0, dataDir }, blobStore: store, executor });
      ws = await BazelWorkspace.create(install!, 'basic');
    }, LONG);

    afterAll(async () => {
      await ws?.dispose();
      await engine?.stop({ drainMs: 2_000 });
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    }, LONG);

    it('re-uploads on FAILED_PRECONDITION (MISSING) and the retried actions succeed remotely', async () => {
      const run = await ws.build(
        'test',
        [
          `--remote_executor=${engine.grpcUrl}`,
          '--spawn_strategy=remote',
          '--noremote_local_fallback',
          '--remote_timeout=60',
          '--remote_download_outputs=all',
          '--noremote_accept_cached',
        ],
        BASIC_TARGETS,
      );
      expect(run.code, run.output).toBe(0);
      const summary = parseProcessSummary(run.output);
      expect(summary, run.output).toBeDefined();
      expect(Object.keys(executedKinds(summary!)), summary!.line).toEqual(['remote']);
      expect(await expectBasicOutputs(ws)).toEqual([]);
      // The failure really happened, and every action that hit it ran again.
      expect(executor.dropped.size).toBeGreaterThanOrEqual(3);
      for (const key of executor.dropped) expect(executor.runs.get(key), `action ${key}`).toBeGreaterThanOrEqual(2);
      // Each first attempt failed the way Bazel is told to re-upload: FAILED_PRECONDITION + PreconditionFailure MISSING.
      expect(executor.errors.length).toBe(executor.dropped.size);
      for (const err of executor.errors) {
        expect(err).toBeInstanceOf(GrpcError);
        expect((err as GrpcError).code, (err as Error).message).toBe(Status.FAILED_PRECONDITION);
        const pf = (err as GrpcError).details.map((d) => unpackAny<rpc.PreconditionFailure>(rpc.PreconditionFailure, d)).find((x) => x);
        expect(pf?.violations.map((v) => v.type), (err as Error).message).toEqual(['MISSING']);
        expect(pf?.violations[0].subject).toMatch(/^blobs\/[0-9a-f]{64}\/\d+$/);
      }
    }, LONG);
  });
}
