// The engine's side of the launcher: starts it (at warm(), else at the first
// request), sends spawn/kill requests, and restarts it if it dies (failing the
// actions it was running).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { killProcessesHolding, killProcessesWorkingIn, type FileIdentity } from './process-markers';
import type { ExitedMessage, LauncherMessage, LauncherRequest, SignalRequest, SpawnRequest } from './launcher-protocol';

export interface ProcessExit {
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  killed: boolean;
  spawnError?: string;
}

export class LauncherDiedError extends Error {
  /**
   * The launcher died before it reported the action started. In a launcher with a PID
   * namespace of its own (a slot's agent) the action then never ran, or was killed with
   * the namespace at once, so the run may be tried elsewhere.
   */
  constructor(
    message: string,
    readonly beforeStart = false,
  ) {
    super(message);
  }
}

interface Pending {
  resolve(exit: ProcessExit): void;
  reject(err: Error): void;
  onStarted?(pid: number): void;
  /** The action's process group (its leader's pid), once the launcher reported it. */
  pid?: number;
  /** The action's marker (its fd 3; marker-sockets.ts), as the launcher reported it. */
  marker?: FileIdentity;
  /** Where the action starts: found by it if the launcher dies before reporting pid and marker. */
  cwd: string;
}

/** Set in a background launcher's environment: it lowers its own priority first, and every action inherits it. */
export const BACKGROUND_ENV = 'KILN_LAUNCHER_BACKGROUND';

/**
 * The launcher forks once per action, and a fork costs in proportion to the
 * process being copied: without V8's helper threads (background compilation,
 * parallel GC), which a process that only spawns has no use for, each spawn cost
 * ~20% less CPU (2.9 vs 3.7 ms per /bin/true from a bare Node process, 3 A/B rounds).
 */
const LAUNCHER_V8_FLAGS = ['--single-threaded'];

/** How to start the launcher: compiled JS normally, through tsx from TypeScript sources (tests). */
export function launcherCommand(background = false): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (background) env[BACKGROUND_ENV] = '1';
  else delete env[BACKGROUND_ENV];
  // Inside Electron, process.execPath is the Electron binary: make it behave as node.
  if (process.versions.electron) env.ELECTRON_RUN_AS_NODE = '1';
  const js = join(__dirname, 'launcher.js');
  const script = __filename.endsWith('.ts') || !existsSync(js) ? ['--import', 'tsx', join(__dirname, 'launcher.ts')] : [js];
  const node = [...LAUNCHER_V8_FLAGS, ...script];
  const idle = background ? idleSchedulingPrefix() : [];
  if (idle.length) return { command: idle[0], args: [...idle.slice(1), process.execPath, ...node], env };
  return { command: process.execPath, args: node, env };
}

let idlePrefix: string[] | undefined;

/**
 * On Linux, `chrt --idle 0 ionice -c 3` when both work here: the background
 * launcher then runs under SCHED_IDLE and the idle I/O class, and every action
 * inherits both at fork, so a polite action gets CPU and disk only when nothing
 * else wants them (nice 19 alone still takes a share). Asked once; where either
 * tool is missing or refused, nice 19 (launcher.ts) is what remains.
 */
function idleSchedulingPrefix(): string[] {
  if (idlePrefix) return idlePrefix;
  idlePrefix = [];
  if (process.platform !== 'linux') return idlePrefix;
  const find = (tool: string) => ['/usr/bin/', '/bin/'].map((dir) => dir + tool).find((p) => existsSync(p));
  const chrt = find('chrt');
  const ionice = find('ionice');
  if (!chrt || !ionice) return idlePrefix;
  const prefix = [chrt, '--idle', '0', ionice, '-c', '3'];
  const probe = spawnSync(prefix[0], [...prefix.slice(1), '/bin/true'], { stdio: 'ignore', timeout: 5_000 });
  if (probe.status === 0) idlePrefix = prefix;
  return idlePrefix;
}

export interface LauncherClientOptions {
  /** A launcher at the lowest priority, whose actions inherit it from the first instruction on. */
  background?: boolean;
  /**
   * How to start it, when not as launcherCommand() says: a slot's agent inside
   * its sandbox (engine/sandbox/slot-sandboxes.ts).
   */
  command?: () => { command: string; args: string[]; env: NodeJS.ProcessEnv };
  /**
   * The launcher runs in a PID namespace of its own whose end takes its actions
   * with it: the pids it reports are not this host's, so none is ever killed here.
   */
  ownPidNamespace?: boolean;
}

export class LauncherClient {
  constructor(private readonly options: LauncherClientOptions = {}) {}

  private child?: ChildProcess;
  /** The launcher process that said it was ready. */
  private readyChild?: ChildProcess;
  private readonly pending = new Map<string, Pending>();
  private closed = false;
  /** Settles when the running launcher has said it is ready (or has died). */
  private started?: Promise<void>;

  /** Runs argv through the launcher; resolves when the process (group leader) exits. */
  run(req: Omit<SpawnRequest, 'type'>, onStarted?: (pid: number) => void): Promise<ProcessExit> {
    if (this.closed) return Promise.reject(new LauncherDiedError('the launcher is closed'));
    if (this.pending.has(req.id)) return Promise.reject(new Error(`action ${req.id} is already running`));
    return new Promise<ProcessExit>((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject, onStarted, cwd: req.cwd });
      this.send({ type: 'spawn', ...req });
    });
  }

  /**
   * Starts the launcher now and resolves once it is reading requests, so the
   * first action does not pay for starting a Node process. Rejects if it dies first.
   */
  warm(): Promise<void> {
    if (this.closed) return Promise.reject(new LauncherDiedError('the launcher is closed'));
    this.ensureStarted();
    return this.started!;
  }

  /** Kills the action's whole process group (SIGTERM, then SIGKILL). */
  kill(id: string): void {
    if (this.pending.has(id)) this.send({ type: 'kill', id });
  }

  /** Signals the action's process group; false when the launcher runs no action of that id. */
  signal(id: string, signal: SignalRequest['signal']): boolean {
    if (!this.pending.has(id)) return false;
    this.send({ type: 'signal', id, signal });
    return true;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Actions it runs now (sent and not yet exited). */
  get running(): number {
    return this.pending.size;
  }

  /** Spawns sent and not yet reported started: while there is one, this launcher is busy forking. */
  get spawning(): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.pid === undefined) n++;
    return n;
  }

  /** Its launcher process is up and has said it is ready. */
  get isReady(): boolean {
    return this.readyChild !== undefined && this.readyChild === this.child;
  }

  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    // Closing stdin tells the launcher to kill what it runs and exit.
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.stdin?.end();
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    });
  }

  private send(msg: LauncherRequest): void {
    const child = this.ensureStarted();
    child.stdin!.write(JSON.stringify(msg) + '\n');
  }

  private ensureStarted(): ChildProcess {
    if (this.child) return this.child;
    const { command, args, env } = this.options.command?.() ?? launcherCommand(this.options.background);
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    let onReady = () => {};
    this.started = new Promise<void>((resolve, reject) => {
      onReady = () => {
        this.readyChild = child;
        resolve();
      };
      child.once('exit', (code, signal) => reject(new LauncherDiedError(`the action launcher exited (${signal ?? code}) while starting`)));
    });
    this.started.catch(() => {}); // nobody may be waiting; a request then fails through 'exit' below
    child.stdin!.on('error', () => {
      /* reported through 'exit' */
    });
    createInterface({ input: child.stdout! }).on('line', (line) => this.onMessage(line, onReady));
    // 'close', not 'exit': it comes once the launcher's stdout is read to its end, so a
    // 'started' it wrote just before dying has been seen and that group is killed too.
    child.once('close', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const why = `the action launcher exited (${signal ?? code}); its running actions were lost`;
      const err = new LauncherDiedError(why);
      const lost = [...this.pending.values()];
      this.pending.clear();
      if (this.options.ownPidNamespace) {
        for (const p of lost) p.reject(new LauncherDiedError(why, p.pid === undefined));
        return;
      }
      // The groups are detached, so they outlive the launcher: stop them before their exec roots are removed,
      // and whatever left its group too (it still holds the marker).
      for (const p of lost) if (p.pid) killGroup(p.pid);
      killProcessesHolding(lost.flatMap((p) => (p.marker ? [p.marker] : [])));
      // Started but not yet reported (the action can run before the launcher writes 'started'): found by its cwd.
      killProcessesWorkingIn(lost.filter((p) => p.pid === undefined).map((p) => p.cwd));
      for (const p of lost) p.reject(err);
    });
    return child;
  }

  private onMessage(line: string, onReady: () => void): void {
    let msg: LauncherMessage;
    try {
      msg = JSON.parse(line) as LauncherMessage;
    } catch {
      return;
    }
    if (msg.type === 'ready') return onReady();
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === 'started') {
      p.pid = msg.pid;
      p.marker = msg.marker;
      p.onStarted?.(msg.pid);
    } else {
      this.pending.delete(msg.id);
      const { code, signal, timedOut, killed, spawnError } = msg as ExitedMessage;
      p.resolve({ code, signal, timedOut, killed, spawnError });
    }
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: already gone.
  }
}
