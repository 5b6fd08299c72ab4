// Messages between the engine and its launcher process: one JSON object per line.

export interface SpawnRequest {
  type: 'spawn';
  id: string;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  stdoutPath: string;
  stderrPath: string;
  /** 0 means no limit. */
  timeoutMs: number;
  /** Start the process as this uid/gid (supplementary groups dropped); the launcher must be root. */
  runAs?: { uid: number; gid: number };
  /** Files opened write-only and handed to the process as fds 4, 5, … (fd 3 is the marker, or nothing). */
  writableFds?: string[];
  /**
   * A slot's agent only (slot-agent.ts): cgroup.procs files, as the slot's
   * sandbox sees them, the action is born in (the agent joins them for the spawn).
   */
  joinCgroups?: string[];
  /** Run at the lowest priority the OS gives an unprivileged process (see launcher.ts). */
  background?: boolean;
}

export interface KillRequest {
  type: 'kill';
  id: string;
}

/** A signal for the action's whole process group; STOP also stops its timeout clock, CONT restarts it. */
export interface SignalRequest {
  type: 'signal';
  id: string;
  signal: 'STOP' | 'CONT' | 'TERM' | 'INT' | 'KILL';
}

export type LauncherRequest = SpawnRequest | KillRequest | SignalRequest;

export interface StartedMessage {
  type: 'started';
  id: string;
  pid: number;
  /**
   * The action's marker (its fd 3, marker-sockets.ts), when it has one: if the
   * launcher dies, the engine sweeps /proc for it.
   */
  marker?: { dev: number; ino: number };
}

export interface ExitedMessage {
  type: 'exited';
  id: string;
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  killed: boolean;
  /** The process could not be started (ENOENT, EACCES…). */
  spawnError?: string;
}

/** Sent once at start: the launcher reads requests from now on. */
export interface ReadyMessage {
  type: 'ready';
}

export type LauncherMessage = StartedMessage | ExitedMessage | ReadyMessage;

/** The first descriptor of SpawnRequest.writableFds in the process. */
export const FIRST_WRITABLE_FD = 4;

/** Milliseconds between SIGTERM and SIGKILL when a group is stopped. */
export const KILL_GRACE_MS = 2000;
