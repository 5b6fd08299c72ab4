// The Runner that runs processes on this machine through the launcher (a small
// long-lived process; see launcher.ts for why the engine does not spawn them
// itself). The launcher writes stdout/stderr straight into the log files, so
// this runner needs sinks backed by a local file.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { SPAWN_FAILURE_EXIT_CODE, exitCodeForSignal, type ActionSignal, type RunExit, type RunRequest, type Runner, type RunnerCapabilities, type RunnerReadiness } from '../execution/runner';
import { LauncherClient } from './launcher-client';

export interface ProcessRunnerOptions {
  /**
   * A second launcher for runs that would wait behind a spawn, started the first
   * time one would and used once it is ready. A spawn blocks its launcher's event loop for the
   * whole fork + exec (3–7 ms here), so one launcher starts actions one after
   * another; two let spawns proceed on two cores. Default: on with more than one CPU.
   */
  spareLauncher?: boolean;
}

export class ProcessRunner implements Runner {
  private readonly launcher: LauncherClient;
  /** The second launcher for overlapping runs (spareLauncher); undefined until the first overlap. */
  private spare?: LauncherClient;
  private readonly spareAllowed: boolean;
  /** Started on the first background run (polite mode): a launcher that itself runs at nice 19. */
  private backgroundLauncher?: LauncherClient;

  constructor(launcher?: LauncherClient, options: ProcessRunnerOptions = {}) {
    this.launcher = launcher ?? new LauncherClient();
    this.spareAllowed = options.spareLauncher ?? availableParallelism() > 1;
  }

  private launcherFor(req: RunRequest): LauncherClient {
    if (req.priority === 'background') return (this.backgroundLauncher ??= new LauncherClient({ background: true }));
    const main = this.launcher;
    // Only a run that would wait behind a fork goes elsewhere: actions that merely run at once
    // cost the main launcher nothing, and sharing them out cost ~1.3–1.5 ms more CPU per
    // action at 16 in flight for no more actions/s (test/bench/ab.ts, README).
    if (!this.spareAllowed || main.spawning === 0) return main;
    if (!this.spare) {
      this.spare = new LauncherClient();
      // Never waited for: runs go to the main launcher until this one is ready.
      this.spare.warm().catch(() => {});
    }
    return this.spare.isReady && this.spare.spawning < main.spawning ? this.spare : main;
  }

  async run(req: RunRequest): Promise<RunExit> {
    if (!req.stdout.path || !req.stderr.path) {
      throw new Error('the process runner writes logs straight into files; give it log sinks with a local path');
    }
    const exit = await this.launcherFor(req).run({
      id: req.id,
      argv: req.argv,
      cwd: join(req.execRoot, req.workingDirectory),
      env: req.env,
      stdoutPath: req.stdout.path,
      stderrPath: req.stderr.path,
      timeoutMs: req.timeoutMs,
      background: req.priority === 'background',
      writableFds: req.writableFds,
      runAs: req.runAs,
    });
    const exitCode = exit.code ?? (exit.spawnError ? SPAWN_FAILURE_EXIT_CODE : exitCodeForSignal(exit.signal));
    return { exitCode, signal: exit.signal ?? undefined, timedOut: exit.timedOut, killed: exit.killed, spawnError: exit.spawnError };
  }

  kill(id: string): void {
    this.launcher.kill(id);
    this.spare?.kill(id);
    this.backgroundLauncher?.kill(id);
  }

  signal(id: string, signal: ActionSignal): boolean {
    return this.launcher.signal(id, signal) || (this.spare?.signal(id, signal) ?? false) || (this.backgroundLauncher?.signal(id, signal) ?? false);
  }

  /** Starts the launcher process now rather than at the first action. */
  warm(): Promise<void> {
    return this.launcher.warm();
  }

  ready(): RunnerReadiness {
    return { ready: true };
  }

  capabilities(): RunnerCapabilities {
    // Resource hints are not enforced yet: the process runs as the engine's user. Background priority is (launcher.ts).
    return { name: 'process', honours: { memoryLimit: false, cpuLimit: false, networkIsolation: false, priority: true } };
  }

  /** The spare launcher's pid once it runs. */
  get spareLauncherPid(): number | undefined {
    return this.spare?.pid;
  }

  /** The launcher's pid once it runs (tests kill it to check recovery). */
  get launcherPid(): number | undefined {
    return this.launcher.pid;
  }

  async close(): Promise<void> {
    await Promise.all([this.launcher.close(), this.spare?.close(), this.backgroundLauncher?.close()]);
  }
}
