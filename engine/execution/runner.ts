// The Runner seam: runs one process in an exec root that is already prepared,
// and knows nothing of REAPI. The launcher-backed ProcessRunner is the first;
// a sandboxing runner (bubblewrap) or a WASI runner is one more file behind
// this interface, registered in engine/executor-factory.ts.
import type { ActionSignal } from '../common/farm-modes';
import type { LogSink } from './log-sink';

export type { ActionSignal };

export interface RunResources {
  memoryBytes?: number;
  cpus?: number;
  /** False asks for no network access. */
  network?: boolean;
}

/** background: the lowest CPU (and, where the OS allows, I/O) priority, so the person at the desk does not feel it. */
export type RunPriority = 'normal' | 'background';

export interface RunRequest {
  /** Unique per run; kill() names it. */
  id: string;
  argv: string[];
  /** Exactly the environment the process gets: nothing is inherited. */
  env: Record<string, string>;
  execRoot: string;
  /** Relative to execRoot; '' is the exec root itself. */
  workingDirectory: string;
  stdout: LogSink;
  stderr: LogSink;
  /** 0 means no limit. */
  timeoutMs: number;
  resources?: RunResources;
  priority?: RunPriority;
  /** The action's platform properties (Action.platform over Command.platform). */
  platform?: Record<string, string>;
  /**
   * Files the runner opens for writing and hands the process as descriptors
   * 4, 5, … (a sandbox's cgroup.procs files, which the action joins from
   * inside). Runners that start no process ignore them.
   */
  writableFds?: string[];
  /** Start the process as this user and group (the action user; engine/sandbox/action-user.ts). */
  runAs?: { uid: number; gid: number };
  /**
   * Every folder in the exec root, relative to it ('' is the root, any order),
   * when the caller made them all and nothing has run there yet: a runner that
   * must visit each folder (to hand it to the action user) need not read the tree.
   */
  stagedFolders?: readonly string[];
}

export interface RunExit {
  /** The shell's convention: the exit status, 128 + signal number when killed, 127 when it could not start. */
  exitCode: number;
  /** The signal that ended it, if one did. */
  signal?: string;
  timedOut: boolean;
  /** Ended by kill(). */
  killed: boolean;
  /** The program could not be started (ENOENT, EACCES…). */
  spawnError?: string;
}

export interface RunnerCapabilities {
  /** Names the runner in logs and the dashboard ("process", "bubblewrap", "wasi"). */
  name: string;
  /** Which RunRequest hints it honours; the rest it ignores. */
  honours: { memoryLimit: boolean; cpuLimit: boolean; networkIsolation: boolean; priority: boolean };
}

export interface RunnerReadiness {
  ready: boolean;
  /** Why not, in words a person can act on. */
  reason?: string;
}

export interface Runner {
  /**
   * Runs the request's argv and resolves when it has exited (or timed out, or
   * was killed). Rejects only when the runner itself failed, never for the
   * process's own failure (that is a RunExit).
   */
  run(request: RunRequest): Promise<RunExit>;
  /** Stops the run with this id and everything it started; unknown ids are ignored. */
  kill(id: string): void;
  /**
   * Sends a signal to the run with this id and everything it started (STOP
   * pauses it, CONT resumes it; a paused run's timeout waits with it).
   * Returns false for an unknown id. Optional: a runner without processes has none to signal.
   */
  signal?(id: string, signal: ActionSignal): boolean;
  ready(): RunnerReadiness;
  capabilities(): RunnerCapabilities;
  /**
   * Starts whatever the runner needs (a helper process, a JIT) before the first
   * action, so that action does not wait for it. Optional; the executor calls
   * it once when it is created.
   */
  warm?(): Promise<void>;
  /**
   * Whether a run with this platform starts its process as a user that can
   * neither write nor chmod the files Kiln owns (the action user): then the
   * inputs hard-linked from the CAS (Kiln's, read-only) cannot change under it,
   * and the executor skips re-hashing them after the run. Optional: absent is no.
   */
  inputsOutOfReach?(platform: Record<string, string> | undefined): boolean;
  close(): Promise<void>;
}

/** Exit code reported when the program could not be started (as shells do for "command not found"). */
export const SPAWN_FAILURE_EXIT_CODE = 127;

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

/** 128 + the signal's number, as shells report a process a signal ended. */
export function exitCodeForSignal(signal: string | null | undefined): number {
  return 128 + (signal ? (SIGNALS[signal] ?? 0) : 0);
}
