// Runs actions on this machine: stage the input tree under a fresh exec root,
// run the command through the launcher, collect and upload the outputs, and
// remove the exec root whatever happened.
import { appendFile, mkdir, readdir, rm, stat, chmod } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock';
import { DIGEST_FUNCTIONS, toWireDigest } from '../digest';
import { internal, invalidArgument } from '../grpc/status';
import { reapi, timestampFromMs } from '../proto';
import type { BlobStore } from '../store/blob-store';
import type { ExecutionHooks, ExecutionOutcome, ExecutionTimings, Executor, PreparedAction } from './executor';
import { inputDigest, planInputTree } from './input-tree';
import { LauncherClient, LauncherDiedError } from './launcher-client';
import { collectOutputs, prepareOutputDirs, requestedOutputs, uploadFile, validateCommand } from './outputs';
import { LinkLedger } from './link-ledger';
import { findTamperedInputs, releaseLinks, stageInputs, type LinkedInput, type StagingResult } from './stage-inputs';

export interface LocalExecutorOptions {
  store: BlobStore;
  /** Exec roots live here, one folder per action; cleared at start. */
  buildRoot: string;
  workerName?: string;
  clock?: Clock;
  launcher?: LauncherClient;
  log?: (line: string) => void;
}

/** Exit code reported when the program could not be started (as shells do for "command not found"). */
export const SPAWN_FAILURE_EXIT_CODE = 127;

export class LocalExecutor implements Executor {
  private readonly clock: Clock;
  private readonly launcher: LauncherClient;
  private readonly workerName: string;
  /** Store inodes hard-linked into running actions: later holders compare against the first one's stats. */
  private readonly links = new LinkLedger();

  private constructor(private readonly opts: LocalExecutorOptions) {
    this.clock = opts.clock ?? systemClock;
    this.launcher = opts.launcher ?? new LauncherClient();
    this.workerName = opts.workerName ?? `kiln@${hostname()}`;
  }

  static async create(opts: LocalExecutorOptions): Promise<LocalExecutor> {
    // Exec roots left by a crash: nothing in them is worth keeping.
    await mkdir(opts.buildRoot, { recursive: true });
    for (const entry of await readdir(opts.buildRoot)) await removeTree(join(opts.buildRoot, entry));
    return new LocalExecutor(opts);
  }

  async run(action: PreparedAction, signal: AbortSignal, hooks: ExecutionHooks = {}): Promise<ExecutionOutcome> {
    const { store } = this.opts;
    const now = () => this.clock.now();
    const t: Partial<ExecutionTimings> = { workerStart: now() };
    const command = action.command;
    validateCommand(command);
    const fn = action.actionDigest.fn;
    const inputRoot = inputDigest(action.action.inputRootDigest, DIGEST_FUNCTIONS[fn], 'input_root_digest');
    const execRoot = join(this.opts.buildRoot, safeFolderName(action.id));
    let release = () => {};
    let staged: StagingResult | undefined;
    let checked = false;
    try {
      hooks.onStage?.('fetching-inputs', (t.inputFetchStart = now()));
      const plan = await planInputTree(store, inputRoot);
      // Checked before anything is written: a bad request costs no staging.
      if (command.workingDirectory && !plan.directories.includes(command.workingDirectory)) {
        throw invalidArgument(`working_directory "${command.workingDirectory}" is not a directory in the input root`, 'working_directory');
      }
      release = store.pin(plan.blobs);
      await mkdir(execRoot, { recursive: true });
      staged = await stageInputs(store, plan, execRoot, this.links);
      const workDir = join(execRoot, command.workingDirectory);
      const outputs = requestedOutputs(command);
      await prepareOutputDirs(workDir, outputs);
      t.inputFetchCompleted = now();

      hooks.onStage?.('running', (t.executionStart = now()));
      const exit = await this.runProcess(action, workDir, signal);
      t.executionCompleted = now();

      hooks.onStage?.('uploading-outputs', (t.outputUploadStart = now()));
      const tampered = await this.dropTampered(action.id, execRoot, staged.linked);
      checked = true;
      const collected = await collectOutputs(store, workDir, outputs, fn);
      const stdoutDigest = await uploadFile(store, action.stdoutPath, fn, (await stat(action.stdoutPath)).size);
      const stderrDigest = await uploadFile(store, action.stderrPath, fn, (await stat(action.stderrPath)).size);
      t.outputUploadCompleted = now();
      t.workerCompleted = now();
      const timings = t as ExecutionTimings;

      const usedV20 = command.outputPaths.length === 0;
      const result = reapi.ActionResult.create({
        outputFiles: collected.files,
        outputDirectories: collected.directories,
        outputSymlinks: usedV20 ? [] : collected.symlinks,
        outputFileSymlinks: usedV20 ? collected.symlinks.filter((s) => command.outputFiles.includes(s.path)) : [],
        outputDirectorySymlinks: usedV20 ? collected.symlinks.filter((s) => command.outputDirectories.includes(s.path)) : [],
        exitCode: exit.code ?? (exit.spawnError ? SPAWN_FAILURE_EXIT_CODE : 128 + signalNumber(exit.signal)),
        stdoutDigest: toWireDigest(stdoutDigest),
        stderrDigest: toWireDigest(stderrDigest),
        executionMetadata: reapi.ExecutedActionMetadata.create({
          worker: this.workerName,
          workerStartTimestamp: timestampFromMs(timings.workerStart),
          inputFetchStartTimestamp: timestampFromMs(timings.inputFetchStart),
          inputFetchCompletedTimestamp: timestampFromMs(timings.inputFetchCompleted),
          executionStartTimestamp: timestampFromMs(timings.executionStart),
          executionCompletedTimestamp: timestampFromMs(timings.executionCompleted),
          outputUploadStartTimestamp: timestampFromMs(timings.outputUploadStart),
          outputUploadCompletedTimestamp: timestampFromMs(timings.outputUploadCompleted),
          workerCompletedTimestamp: timestampFromMs(timings.workerCompleted),
        }),
      });
      return {
        result,
        status: exit.timedOut ? 'timeout' : exit.killed || signal.aborted ? 'cancelled' : 'ok',
        timings,
        inputFiles: plan.files.length,
        inputBytes: plan.totalBytes,
        outputs: collected.summary,
        tamperedInputs: tampered.map((l) => l.path),
      };
    } finally {
      if (staged) {
        // Failed after staging (launcher died, upload error): the links still get checked.
        if (!checked) await this.dropTampered(action.id, execRoot, staged.linked).catch(() => []);
        releaseLinks(this.links, staged.linked);
      }
      release();
      await removeTree(execRoot).catch((err) => this.opts.log?.(`kiln: could not remove ${execRoot}: ${(err as Error).message}`));
    }
  }

  /** Drops from the store every blob whose inode this action changed; returns those inputs. */
  private async dropTampered(id: string, execRoot: string, linked: LinkedInput[]): Promise<LinkedInput[]> {
    const tampered = await findTamperedInputs(execRoot, linked);
    for (const l of tampered) {
      await this.opts.store.delete(l.digest);
      this.opts.log?.(`kiln: action ${id} ran with a modified hard-linked input ${l.path}; dropped ${l.digest.hash} from the CAS`);
    }
    return tampered;
  }

  private async runProcess(action: PreparedAction, workDir: string, signal: AbortSignal) {
    const env: Record<string, string> = {};
    for (const e of action.command.environmentVariables) env[e.name ?? ''] = e.value ?? '';
    const onAbort = () => this.launcher.kill(action.id);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal.aborted) return { code: null, signal: null, timedOut: false, killed: true };
      const exit = await this.launcher.run({
        id: action.id,
        argv: action.command.arguments,
        cwd: workDir,
        env,
        stdoutPath: action.stdoutPath,
        stderrPath: action.stderrPath,
        timeoutMs: action.timeoutMs,
      });
      if (exit.spawnError) {
        await appendFile(action.stderrPath, `kiln: could not start ${JSON.stringify(action.command.arguments[0])}: ${exit.spawnError}\n`);
      }
      return exit;
    } catch (err) {
      if (err instanceof LauncherDiedError) throw internal(err.message);
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {
    await this.launcher.close();
  }
}

/** Operation ids are UUIDs, but never trust a name that becomes a path. */
function safeFolderName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120) || 'action';
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };
function signalNumber(sig: string | null | undefined): number {
  return sig ? (SIGNALS[sig] ?? 0) : 0;
}

/** rm -rf that also copes with read-only directories an action left behind (for non-root users). */
async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch {
    await makeWritable(path);
    await rm(path, { recursive: true, force: true });
  }
}

async function makeWritable(path: string): Promise<void> {
  try {
    await chmod(path, 0o755);
    for (const e of await readdir(path, { withFileTypes: true })) if (e.isDirectory()) await makeWritable(join(path, e.name));
  } catch {
    /* best effort */
  }
}
