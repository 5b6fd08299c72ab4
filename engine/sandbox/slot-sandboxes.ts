// Sandboxes made ahead, one per concurrent slot: each is one long-lived bwrap
// (slot-bwrap-args.ts) whose inside is Kiln's launcher in slot mode (the
// agent, engine/worker/slot-agent.ts). An action then costs no bwrap, no
// namespace, no mount and no shell: the agent spawns it as its uid in its exec
// root, and makes the slot clean again before it reports the action over.
//
// A slot is started the first time more actions run at once than there are
// idle slots (the action that found none takes the per-action sandbox
// meanwhile), and again when its agent has died; warm() starts the first one.
// Each slot runs /bin/true once through its agent before it takes an action.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ActionSignal, RunRequest } from '../execution/runner';
import { SLOT_SPAWNER_ENV } from '../worker/slot-spawner';
import { LauncherClient, LauncherDiedError, launcherCommand, type ProcessExit } from '../worker/launcher-client';
import { SLOT_AGENT_ENV } from '../worker/slot-agent';
import { isPackedArchive, packageRoot } from '../util/package-root';
import { isWithin, type HostLayout } from './bwrap-args';
import { nestArgs } from './nest-args';
import { AGENT_CGROUP_DIR, AGENT_DIR, AGENT_LOG_DIR, pathInSlot, slotBwrapArgs } from './slot-bwrap-args';

/**
 * V8 flags for the agent on top of the launcher's own (--single-threaded):
 * lite mode leaves out the optimising compilers, whose code and type feedback
 * an agent that only relays small requests has no use for (about 1 MiB less
 * at idle and 6 MiB less after 200 spawns, per-spawn CPU unchanged, measured
 * on a bare launcher; see README). It turns off WebAssembly, which lite mode
 * would do anyway with a warning on stderr each time an agent starts.
 */
const AGENT_V8_FLAGS = ['--lite-mode', '--no-expose-wasm'];

/** What a new slot's agent runs once before its first action (as LocalExecutor's warm-up). */
const WARM_UP_PROGRAM = '/bin/true';

export interface SlotSandboxesOptions {
  bwrap: string;
  host: HostLayout;
  buildRoot: string;
  logDir: string;
  /** Folders the per-action cgroups are made in (CgroupLimiter.parentDirs); none without limits. */
  cgroupParents: readonly string[];
  /** Most slots at once; runs beyond it take the per-action sandbox. */
  max: number;
  /**
   * Kiln is not root: an unprivileged slot, each action started in it through
   * this kiln-nest binary (nest-helper.ts), in namespaces of its own, with at
   * most `processes` processes and threads (no cgroup there to count them),
   * and, with `watchMemory` (no cgroup limits memory), its memory limit watched.
   */
  nest?: { helper: string; processes?: number; watchMemory?: boolean };
  /** kiln-spawn (engine/worker/slot-spawner.ts): the agents start actions through it instead of forking themselves. */
  spawner?: string;
  log?: (line: string) => void;
}

interface Slot {
  client: LauncherClient;
  /** The run it holds, if any. */
  runId?: string;
}

export class SlotSandboxes {
  private readonly slots: Slot[] = [];
  private readonly byRun = new Map<string, Slot>();
  private readonly binds: { host: string; inside: string }[];
  /** Unprivileged: what kiln-nest covers for every action (fixed for the slots' life, so found once). */
  private readonly nestHidden: string[];
  private closed = false;
  /** Numbers the slots' warm-up runs (their ids must differ from any action's). */
  private warmUps = 0;

  constructor(private readonly opts: SlotSandboxesOptions) {
    this.binds = [
      { host: opts.logDir, inside: AGENT_LOG_DIR },
      ...opts.cgroupParents.map((dir, i) => ({ host: dir, inside: join(AGENT_CGROUP_DIR, String(i)) })),
    ];
    // The build folder, the agent's folder, and Kiln's code where it is not inside a system folder.
    const system = opts.host.system.flatMap((e) => (e.kind === 'dir' ? [e.path] : []));
    const code = opts.nest ? codeDirs(opts).filter((dir) => !system.some((s) => isWithin(dir, s))) : [];
    this.nestHidden = opts.nest ? [opts.buildRoot, AGENT_DIR, ...code] : [];
  }

  /** Whether a run can go into a slot at all: as a uid of its own, in the build folder, logging into the log folder. */
  fits(req: RunRequest): boolean {
    return (
      // Unprivileged, every action runs as Kiln's user (kiln-nest keeps them apart); as root, each as a uid of its own.
      (this.opts.nest ? req.runAs === undefined : req.runAs !== undefined) &&
      req.execRoot.startsWith(`${this.opts.buildRoot}/`) &&
      !!req.stdout.path &&
      !!req.stderr.path &&
      pathInSlot(req.stdout.path, this.binds) !== undefined &&
      pathInSlot(req.stderr.path, this.binds) !== undefined
    );
  }

  /**
   * An idle slot whose agent is up, taken for `id`; undefined when there is
   * none right now (one more is started, up to max, for the runs to come).
   */
  take(id: string): Slot | undefined {
    if (this.closed) return undefined;
    const idle = this.slots.find((s) => s.runId === undefined && s.client.isReady);
    if (idle) {
      idle.runId = id;
      this.byRun.set(id, idle);
      return idle;
    }
    // An idle slot whose agent died comes back; otherwise one more slot, if allowed.
    const dead = this.slots.find((s) => s.runId === undefined && !s.client.isReady);
    if (dead) this.start(dead);
    else if (this.slots.length < this.opts.max) this.start(this.add());
    return undefined;
  }

  /**
   * Runs the request in the slot `take()` gave, joined to the cgroups whose
   * cgroup.procs files (host paths) are given; `memoryBytes` is the action's
   * limit, for kiln-nest to watch where no cgroup enforces it.
   */
  async run(slot: Slot, req: RunRequest, cgroupProcs: readonly string[], memoryBytes?: number): Promise<ProcessExit> {
    let agentDied = false;
    try {
      const cgroupsInside = cgroupProcs.map((file) => {
        const inside = pathInSlot(file, this.binds);
        if (!inside) throw new Error(`the cgroup ${dirname(file)} is not in a folder the slot's sandbox was given`);
        return inside;
      });
      return await slot.client.run({
        id: req.id,
        // Unprivileged, kiln-nest joins the cgroups itself, before it makes the action's namespaces (a cgroup one too).
        argv: this.actionArgv(req.argv, req.execRoot, req.priority === 'background', this.opts.nest ? cgroupsInside : [], memoryBytes),
        cwd: join(req.execRoot, req.workingDirectory),
        env: req.env,
        stdoutPath: pathInSlot(req.stdout.path!, this.binds)!,
        stderrPath: pathInSlot(req.stderr.path!, this.binds)!,
        timeoutMs: req.timeoutMs,
        background: req.priority === 'background',
        runAs: req.runAs,
        joinCgroups: this.opts.nest ? [] : cgroupsInside,
      });
    } catch (err) {
      agentDied = err instanceof LauncherDiedError;
      throw err;
    } finally {
      this.byRun.delete(req.id);
      slot.runId = undefined;
      // Made anew at once, not at the next take(): the runs to come should find it ready.
      if (agentDied && !this.closed) void this.start(slot);
    }
  }

  kill(id: string): boolean {
    const slot = this.byRun.get(id);
    slot?.client.kill(id);
    return slot !== undefined;
  }

  signal(id: string, signal: ActionSignal): boolean | undefined {
    const slot = this.byRun.get(id);
    return slot && slot.client.signal(id, signal);
  }

  /** Starts the first slot, so the first action finds it ready. */
  async warm(): Promise<void> {
    if (this.slots.length === 0 && this.opts.max > 0) await this.start(this.add());
  }

  /**
   * Starts a slot's sandbox once, the agent in it reporting ready, and ends it:
   * undefined when that works here, else why not (at start, so a host where it
   * cannot work says so instead of failing each action).
   */
  trial(): string | undefined {
    const { command, args, env } = this.command();
    const r = spawnSync(command, args, { env, input: '', encoding: 'utf8', timeout: 30_000 });
    if (r.error) return `its bubblewrap could not be run: ${r.error.message}`;
    if (!r.stdout.includes('"type":"ready"')) {
      const why = (r.stderr ?? '').trim().split('\n')[0] || `exit status ${r.status ?? r.signal}`;
      return `its sandbox did not start: ${why}`;
    }
    if (!this.opts.nest) return undefined;
    // The same sandbox with an action's launch in place of the agent: nested user namespaces may be refused (sysctls, seccomp).
    const nested = this.command(this.actionArgv(['/bin/true'], this.opts.buildRoot, false));
    const n = spawnSync(nested.command, nested.args, { env: nested.env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 30_000 });
    if (n.status !== 0) {
      const why = (n.stderr ?? '').trim().split('\n')[0] || `exit status ${n.status ?? n.signal}`;
      return `an action's namespaces could not be made inside it: ${why}`;
    }
    return undefined;
  }

  /** How many slots run now (their agents up). */
  get ready(): number {
    return this.slots.filter((s) => s.client.isReady).length;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.client.close()));
  }

  private add(): Slot {
    const slot: Slot = {
      client: new LauncherClient({ command: () => this.command(), ownPidNamespace: true }),
    };
    this.slots.push(slot);
    return slot;
  }

  /**
   * Starts the slot's sandbox and runs WARM_UP_PROGRAM once through its agent
   * before any action may take it: the agent's first spawn (libuv's first
   * fork, first calls through the run and reset path) costs several times a
   * later one, and the first action in the slot should not pay it. Nothing is
   * logged or stored (its output goes to /dev/null); the slot stays taken
   * until the run is over, so take() never hands it out half warm.
   */
  private async start(slot: Slot): Promise<void> {
    const id = `kiln-slot-warm-up-${++this.warmUps}`;
    slot.runId = id;
    try {
      await slot.client.warm();
      if (existsSync(WARM_UP_PROGRAM)) {
        const exit = await slot.client.run({ id, argv: this.actionArgv([WARM_UP_PROGRAM], this.opts.buildRoot, false), cwd: '/', env: {}, stdoutPath: '/dev/null', stderrPath: '/dev/null', timeoutMs: 10_000 });
        if (exit.code !== 0) this.opts.log?.(`kiln: a slot's warm-up run of ${WARM_UP_PROGRAM} ended ${exit.spawnError ?? exit.signal ?? exit.code}`);
      }
    } catch (err) {
      // Closing while a slot starts ends its agent: nothing to report then.
      if (!this.closed) this.opts.log?.(`kiln: a slot's sandbox did not start: ${(err as Error).message}`);
    } finally {
      if (slot.runId === id) slot.runId = undefined;
    }
  }

  /**
   * What the agent spawns for an action: the action itself (as root, it runs as
   * its own uid), or, unprivileged, kiln-nest around it, which shows it only
   * its exec root and keeps the build folder, the agent's folder and Kiln's
   * code (outside the system folders) covered.
   */
  private actionArgv(argv: string[], execRoot: string, background: boolean, cgroups: readonly string[] = [], memoryBytes?: number): string[] {
    const nest = this.opts.nest;
    if (!nest) return argv;
    return nestArgs({
      helper: nest.helper,
      hide: this.nestHidden,
      execRoot,
      nice: background ? 19 : undefined,
      processes: nest.processes,
      memoryBytes: nest.watchMemory ? memoryBytes : undefined,
      cgroups,
      argv,
    });
  }

  /** bwrap, with the launcher as the agent inside (or `instead`, for a trial of an action's launch). */
  private command(instead?: string[]): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
    const launcher = launcherCommand();
    const env: Record<string, string> = { PATH: '/usr/local/bin:/usr/bin:/bin', [SLOT_AGENT_ENV]: '1' };
    if (this.opts.spawner) env[SLOT_SPAWNER_ENV] = this.opts.spawner;
    if (launcher.env.ELECTRON_RUN_AS_NODE) env.ELECTRON_RUN_AS_NODE = '1';
    const codeRoot = packageRoot(__dirname);
    const args = slotBwrapArgs({
      host: this.opts.host,
      buildRoot: this.opts.buildRoot,
      logDir: this.opts.logDir,
      cgroupParents: this.opts.cgroupParents,
      codeDirs: codeDirs(this.opts),
      // --import tsx (tests) is found from the working folder: Kiln's own.
      agent: { argv: instead ?? [launcher.command, ...AGENT_V8_FLAGS, ...launcher.args], cwd: agentWorkingFolder(codeRoot), env },
      unprivileged: this.opts.nest !== undefined,
    });
    return { command: this.opts.bwrap, args, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } };
  }
}

/**
 * Kiln's code, bound read-only into a slot: the agent's runtime (node or
 * Electron), the package, and the native helpers' folders (in a packaged app
 * they sit beside app.asar, not in it).
 */
function codeDirs(opts: { nest?: { helper: string }; spawner?: string }): string[] {
  const helpers = [opts.nest?.helper, opts.spawner].filter((path): path is string => path !== undefined).map((path) => dirname(path));
  return [...new Set([dirname(launcherCommand().command), packageRoot(__dirname), ...helpers])];
}

/**
 * The agent's working folder: Kiln's package root, or, in a packaged app, the
 * folder holding app.asar (one file to the kernel: bwrap's --chdir into it
 * failed, and with it every slot of the desktop app).
 */
export function agentWorkingFolder(codeRoot: string): string {
  return isPackedArchive(codeRoot) ? dirname(codeRoot) : codeRoot;
}

