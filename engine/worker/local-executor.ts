// Runs actions on this machine: stage the input tree under a fresh exec root,
// hand the command to a Runner, collect and upload the outputs, and remove the
// exec root whatever happened (behind the answer: background-removals.ts). How
// the process runs (launcher, sandbox, WASI) is the Runner's business; result
// shaping, metadata and caching are decorators (engine/execution/).
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { mkdir, readdir, rm, rmdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, posix } from 'node:path';
import { systemClock, type Clock } from '../clock';
import { markTopFolder } from '../util/top-folder';
import { DIGEST_FUNCTIONS, toWireDigest } from '../digest';
import { GrpcError, internal, invalidArgument } from '../grpc/status';
import { reapi } from '../proto';
import { effectivePlatformProperties } from '../execution/platform';
import { FileLogSink } from '../execution/log-sink';
import type { BlobStore } from '../store/blob-store';
import type { ExecutionHooks, ExecutionOutcome, ExecutionTimings, Executor, ExecutorCapacity, PreparedAction } from '../execution/executor';
import type { ActionSignal, RunExit, Runner } from '../execution/runner';
import { inputDigest, planInputTree } from './input-tree';
import { collectOutputs, prepareOutputDirs, requestedOutputs, uploadFile, validateCommand } from './outputs';
import { LinkLedger } from './link-ledger';
import { ProcessRunner } from './process-runner';
import { removeTree } from './remove-tree';
import { TreeRemover } from './tree-remover';
import { BackgroundRemovals, DEFAULT_DEFERRED_REMOVAL_LIMITS, MAX_PENDING_REMOVALS, type DeferredRemovalLimits } from './background-removals';
import { ExecutableCopies } from './executable-copies';
import { findTamperedInputs, releaseLinks, stageInputs, stagedEntries, type LinkedInput, type StagingResult } from './stage-inputs';

export interface LocalExecutorOptions {
  store: BlobStore;
  /** Exec roots live here, one folder per action; cleared at start. */
  buildRoot: string;
  /** Runs the command in the staged exec root; a ProcessRunner (the launcher) by default. Closed with the executor. */
  runner?: Runner;
  /** Actions it runs at once (reported by capacity()). */
  slots?: number;
  workerName?: string;
  clock?: Clock;
  log?: (line: string) => void;
  /** When exec roots are removed: after a quiet moment within these bounds (the default), or false for right behind each answer. */
  deferRemovals?: DeferredRemovalLimits | false;
  /**
   * The folder actions' logs go to (the scheduler's): the warm-up writes its own there, as a
   * slot sandbox binds that folder and no other for logs. The build folder by default.
   */
  logDir?: string;
  /** Removes exec roots on its thread (one is made when not given; tests give their own to watch it). Closed with the executor. */
  remover?: TreeRemover;
}

export { SPAWN_FAILURE_EXIT_CODE } from '../execution/runner';

/** Runners the warm-up goes through (RunnerCapabilities.name): the launcher, bare or in bubblewrap. */
const WARMED_RUNNERS = new Set(['process', 'bubblewrap']);

/** What the warm-up at start runs: present on Linux and macOS; elsewhere there is no warm-up run. */
const WARM_UP_PROGRAM = '/bin/true';

/** The build folder's folder of shared executable copies (executable-copies.ts). */
const EXECUTABLES_FOLDER = '.executables';

export class LocalExecutor implements Executor {
  private readonly clock: Clock;
  private readonly runner: Runner;
  private readonly workerName: string;
  /** Store inodes hard-linked into running actions: later holders compare against the first one's stats. */
  private readonly links = new LinkLedger();
  /** Removes exec roots off the main thread. */
  private readonly remover: TreeRemover;
  /** The warm-up run at start while it runs: actions wait for it rather than race it for the runner's first slot. */
  private warming: Promise<void> | undefined;
  /** Exec roots of actions that have answered, removed behind the answers (after a quiet moment, by default). */
  private readonly removals: BackgroundRemovals;

  /** Executable inputs are hard links to these copies, not a copy per action. */
  private readonly executables: ExecutableCopies;

  private constructor(private readonly opts: LocalExecutorOptions) {
    this.remover = opts.remover ?? new TreeRemover();
    // In the build folder, cleared at start like the exec roots; no action's folder has its name (safeFolderName).
    this.executables = new ExecutableCopies(join(opts.buildRoot, EXECUTABLES_FOLDER));
    this.removals = new BackgroundRemovals(
      (path) =>
        this.remover
          .remove(path)
          .catch(() => removeTree(path))
          .catch((err) => this.opts.log?.(`kiln: could not remove ${path}: ${(err as Error).message}`)),
      MAX_PENDING_REMOVALS,
      opts.deferRemovals === false ? undefined : (opts.deferRemovals ?? DEFAULT_DEFERRED_REMOVAL_LIMITS),
    );
    this.clock = opts.clock ?? systemClock;
    this.runner = opts.runner ?? new ProcessRunner();
    this.workerName = opts.workerName ?? `kiln@${hostname()}`;
  }

  static async create(opts: LocalExecutorOptions): Promise<LocalExecutor> {
    // Exec roots left by a crash: nothing in them is worth keeping.
    await mkdir(opts.buildRoot, { recursive: true });
    for (const entry of await readdir(opts.buildRoot)) await removeTree(join(opts.buildRoot, entry));
    // Each exec root is a tree of its own: on ext4, spread them to roomy block groups (top-folder.ts).
    await markTopFolder(opts.buildRoot);
    const executor = new LocalExecutor(opts);
    // The first action should not wait for the runner to start (for the launcher: a Node process, ~100 ms or more).
    await executor.runner.warm?.().catch((err: Error) => opts.log?.(`kiln: the ${executor.runner.capabilities().name} runner did not start early: ${err.message}`));
    // Not awaited: through a sandbox it takes ~150 ms, which start need not wait for; an action that comes meanwhile waits for it instead.
    executor.warming = executor.warmUp().finally(() => (executor.warming = undefined));
    return executor;
  }

  /** Resolves once the warm-up run at start has ended (at once when there was none). */
  async warmedUp(): Promise<void> {
    await this.warming;
  }

  /**
   * Runs /bin/true once through the whole local path (plan, stage, runner,
   * collect, clean up), so the first real action does not pay for what only a
   * first run pays: the libuv threadpool's threads, the launcher's first spawn,
   * first calls through every step. No hooks and no store writes (an empty
   * tree and empty logs need none), so it shows nowhere; a failure is logged.
   * Measured by the per-step timestamps (see README, Performance notes).
   */
  private async warmUp(): Promise<void> {
    // The launcher's path, bare or in a bubblewrap slot (whose first action also made its cgroup and met the kernel's
    // first cgroup move, ~8-20 ms here); another runner has first costs of its own, and a test's fake none.
    if (!WARMED_RUNNERS.has(this.runner.capabilities().name) || !existsSync(WARM_UP_PROGRAM)) return;
    const id = 'kiln-warm-up';
    const empty = { hash: DIGEST_FUNCTIONS.sha256.emptyHash, sizeBytes: 0 };
    const logDir = this.opts.logDir ?? this.opts.buildRoot;
    mkdirSync(logDir, { recursive: true });
    const logs = join(logDir, `${id}.log`);
    try {
      const outcome = await this.runNow(
        {
          id,
          instance: '',
          actionDigest: { fn: 'sha256', hash: DIGEST_FUNCTIONS.sha256.emptyHash, size: 0 },
          action: reapi.Action.create({ inputRootDigest: empty }),
          command: reapi.Command.create({ arguments: [WARM_UP_PROGRAM] }),
          timeoutMs: 10_000,
          logs: { stdout: new FileLogSink(logs), stderr: new FileLogSink(logs) },
        },
        new AbortController().signal,
      );
      if (outcome.result.exitCode !== 0) this.opts.log?.(`kiln: the warm-up run of ${WARM_UP_PROGRAM} exited ${outcome.result.exitCode}`);
    } catch (err) {
      this.opts.log?.(`kiln: the warm-up run of ${WARM_UP_PROGRAM} failed: ${(err as Error).message}`);
    } finally {
      await rm(logs, { force: true }).catch(() => {});
      await this.removals.settled(); // start leaves an empty build folder
    }
  }

  validateCommand(command: reapi.Command): void {
    validateCommand(command);
  }

  capacity(): ExecutorCapacity {
    const { ready, reason } = this.runner.ready();
    return { slots: this.opts.slots, ready, reason };
  }

  signal(id: string, signal: ActionSignal): boolean {
    return this.runner.signal?.(id, signal) ?? false;
  }

  /** Staging → runner → collection. */
  async run(action: PreparedAction, signal: AbortSignal, hooks: ExecutionHooks = {}): Promise<ExecutionOutcome> {
    // Started with the first action, not at start nor by the warm-up (an idle engine keeps its ~9 MiB); until it is up, removals run here.
    void this.remover.warm();
    if (this.warming) await this.warming;
    return this.runNow(action, signal, hooks);
  }

  private async runNow(action: PreparedAction, signal: AbortSignal, hooks: ExecutionHooks = {}): Promise<ExecutionOutcome> {
    const { store } = this.opts;
    const now = () => this.clock.now();
    const t: Partial<ExecutionTimings> = { workerStart: now() };
    const { command } = action;
    const fn = action.actionDigest.fn;
    const inputRoot = inputDigest(action.action.inputRootDigest, DIGEST_FUNCTIONS[fn], 'input_root_digest');
    const execRoot = join(this.opts.buildRoot, safeFolderName(action.id));
    let release = () => {};
    let staged: StagingResult | undefined;
    let outputBytes = 0;
    let checked = false;
    try {
      // Stamped before the hook: `?.` would skip evaluating its arguments when there is no hook.
      t.inputFetchStart = now();
      hooks.onStage?.('fetching-inputs', t.inputFetchStart);
      const plan = await planInputTree(store, inputRoot);
      hooks.onInputs?.(plan.files.length, plan.totalBytes);
      // Checked before anything is written: a bad request costs no staging.
      if (command.workingDirectory && !plan.directories.includes(command.workingDirectory)) {
        throw invalidArgument(`working_directory "${command.workingDirectory}" is not a directory in the input root`, 'working_directory');
      }
      release = store.pin(plan.blobs);
      // Staging creates the exec root itself (the plan's first directory).
      // Run as a user that cannot touch Kiln's read-only files, the hard-linked inputs need no re-hash after the run.
      const outOfReach = this.runner.inputsOutOfReach?.(effectivePlatformProperties(action.action, action.command)) ?? false;
      staged = await stageInputs(store, plan, execRoot, this.links, { outOfReach, executables: this.executables });
      const workDir = join(execRoot, command.workingDirectory);
      const outputs = requestedOutputs(command);
      const outputFolders = await prepareOutputDirs(workDir, outputs, stagedEntries(plan, command.workingDirectory));
      // Staging and prepareOutputDirs made every folder there is (some of the latter may repeat the plan's).
      const stagedFolders = [...new Set([...plan.directories, ...outputFolders.map((f) => posix.join(command.workingDirectory, f))])];
      t.inputFetchCompleted = now();

      t.executionStart = now();
      hooks.onStage?.('running', t.executionStart);
      const exit = await this.runCommand(action, execRoot, signal, stagedFolders);
      t.executionCompleted = now();

      t.outputUploadStart = now();
      hooks.onStage?.('uploading-outputs', t.outputUploadStart);
      const tampered = await this.dropTampered(action.id, execRoot, staged.linked);
      checked = true;
      // Side by side: each is a file system round trip or more, and none needs another's result.
      const [collected, stdoutDigest, stderrDigest] = await Promise.all([
        collectOutputs(store, workDir, outputs, fn),
        this.uploadLog(action.logs.stdout.path, fn),
        this.uploadLog(action.logs.stderr.path, fn),
      ]);
      t.outputUploadCompleted = now();
      for (const o of collected.summary) outputBytes += o.bytes;
      t.workerCompleted = now();

      return {
        // Every symlink in output_symlinks: ResultShapingExecutor sorts them into the fields the client's version reads.
        result: reapi.ActionResult.create({
          outputFiles: collected.files,
          outputDirectories: collected.directories,
          outputSymlinks: collected.symlinks,
          exitCode: exit.exitCode,
          stdoutDigest: toWireDigest(stdoutDigest),
          stderrDigest: toWireDigest(stderrDigest),
        }),
        status: exit.timedOut ? 'timeout' : exit.killed || signal.aborted ? 'cancelled' : 'ok',
        timings: t as ExecutionTimings,
        worker: this.workerName,
        inputFiles: plan.files.length,
        inputBytes: plan.totalBytes,
        outputs: collected.summary,
        cacheable: tampered.length === 0,
        notCacheableReason: tampered.length ? `the action modified its input(s) ${tampered.slice(0, 3).map((l) => l.path).join(', ')}` : undefined,
      };
    } finally {
      if (staged) {
        // Failed after staging (runner died, upload error): the links still get checked.
        if (!checked) await this.dropTampered(action.id, execRoot, staged.linked).catch(() => []);
        releaseLinks(this.links, staged.linked);
      }
      release();
      // Nothing in it is needed any more (outputs are in the store, links checked): removed behind the answer.
      await this.removals.add(execRoot, outputBytes);
    }
  }

  /** Drops from the store every blob whose inode this action changed; returns those inputs. */
  private async dropTampered(id: string, execRoot: string, linked: LinkedInput[]): Promise<LinkedInput[]> {
    const tampered = await findTamperedInputs(execRoot, linked);
    for (const l of tampered) {
      if (l.executableCopy) {
        await this.executables.drop(l.digest);
        this.opts.log?.(`kiln: action ${id} modified its hard-linked executable input ${l.path}; dropped Kiln's executable copy of ${l.digest.hash}`);
        continue;
      }
      await this.opts.store.delete(l.digest);
      this.opts.log?.(`kiln: action ${id} ran with a modified hard-linked input ${l.path}; dropped ${l.digest.hash} from the CAS`);
    }
    return tampered;
  }

  private async runCommand(action: PreparedAction, execRoot: string, signal: AbortSignal, stagedFolders: readonly string[]): Promise<RunExit> {
    const env: Record<string, string> = {};
    for (const e of action.command.environmentVariables) env[e.name ?? ''] = e.value ?? '';
    if (signal.aborted) return { exitCode: 0, timedOut: false, killed: true };
    const onAbort = () => this.runner.kill(action.id);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const exit = await this.runner.run({
        id: action.id,
        argv: action.command.arguments,
        env,
        execRoot,
        workingDirectory: action.command.workingDirectory,
        stdout: action.logs.stdout,
        stderr: action.logs.stderr,
        timeoutMs: action.timeoutMs,
        platform: effectivePlatformProperties(action.action, action.command),
        stagedFolders,
      });
      if (exit.spawnError) {
        await action.logs.stderr.write(`kiln: could not start ${JSON.stringify(action.command.arguments[0])}: ${exit.spawnError}\n`);
      }
      return exit;
    } catch (err) {
      if (err instanceof GrpcError) throw err;
      throw internal(`the ${this.runner.capabilities().name} runner failed: ${(err as Error)?.message ?? err}`);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Logs are uploaded from their local file; no file (a runner that wrote nothing there) is an empty log.
   * The size is a synchronous stat: a log file is in the data folder, its inode cached, and the thread
   * pool's round trip cost more than the call itself, twice per action (see util/sync-batches.ts).
   */
  private async uploadLog(path: string | undefined, fn: PreparedAction['actionDigest']['fn']) {
    const size = path ? statSync(path, { throwIfNoEntry: false })?.size : undefined;
    // Most actions print nothing: an empty log is the empty blob, which every store has, so it is not read.
    if (!path || !size) return { fn, hash: DIGEST_FUNCTIONS[fn].emptyHash, size: 0 };
    return uploadFile(this.opts.store, path, fn, size);
  }

  /** Resolves once the exec roots of every action that has answered are gone. */
  settled(): Promise<void> {
    return this.removals.settled();
  }

  async close(): Promise<void> {
    await this.warming;
    await this.removals.settled();
    await this.executables.clear();
    await this.remover.close();
    await this.runner.close();
    // Empty now: not left behind (a build folder in /var/tmp is made again, and checked, at the next start).
    await rmdir(this.opts.buildRoot).catch(() => {});
  }
}

/**
 * Operation ids are UUIDs, but never trust a name that becomes a path: no
 * slash, and no leading dot ('.', '..', or the build folder's own EXECUTABLES_FOLDER).
 */
function safeFolderName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\./, '_').slice(0, 120) || 'action';
}
