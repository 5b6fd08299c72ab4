// The sandboxing Runner: a decorator that runs each action through bubblewrap
// (engine/sandbox/bwrap-args.ts has the rules) inside a cgroup of its own, on
// top of any runner that starts processes (the launcher's ProcessRunner).
// Killing the run kills bwrap; its PID namespace then takes every process the
// action started with it, and the cgroup teardown kills anything left.
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ActionSignal, RunExit, RunRequest, Runner, RunnerCapabilities, RunnerReadiness } from '../execution/runner';
import { SPAWN_FAILURE_EXIT_CODE, exitCodeForSignal } from '../execution/runner';
import { PRELUDE_NAME, bwrapArgs, type HostLayout } from './bwrap-args';
import type { ActionCgroup, ActionLimits, CgroupLimiter } from './cgroups';
import { nestArgs } from './nest-args';
import { optOutRefused, readSandboxProperties } from './sandbox-properties';
import type { SlotSandboxes } from './slot-sandboxes';
import { LauncherDiedError } from '../worker/launcher-client';

export interface SandboxRunnerOptions {
  /** Starts the bwrap process (a ProcessRunner). Closed with this runner. */
  inner: Runner;
  /** Path of the bwrap binary. */
  bwrap: string;
  host: HostLayout;
  /** Per-action cgroups; without them memory/CPU/process limits are not enforced. */
  cgroups?: CgroupLimiter;
  /** Limits for actions that ask for none. */
  defaults?: ActionLimits;
  /** Whether an action may ask to run unsandboxed (platform property sandbox=none). */
  allowOptOut?: boolean;
  /**
   * Sandboxes made ahead, one per slot (slot-sandboxes.ts): an action that runs
   * as a uid of its own with the network off goes into an idle one instead of a
   * bwrap of its own. Absent: every action gets its own.
   */
  slots?: SlotSandboxes;
  /**
   * No cgroup limits memory (not root, no delegated cgroups): each action with
   * a memory limit runs through this kiln-nest, which watches it (as in a slot).
   */
  memoryWatch?: { helper: string };
}

export class SandboxRunner implements Runner {
  /** Runs still making their cgroup, and those of them kill() reached before the process existed. */
  private readonly preparing = new Set<string>();
  private readonly cancelledEarly = new Set<string>();
  /** Cgroups of finished runs still being removed; close() waits for them. */
  private readonly removing = new Set<Promise<void>>();

  constructor(private readonly opts: SandboxRunnerOptions) {}

  async run(req: RunRequest): Promise<RunExit> {
    const props = readSandboxProperties(req.platform);
    if (props.optOut) {
      if (this.opts.allowOptOut) return this.opts.inner.run(req);
      throw optOutRefused();
    }
    const limits: ActionLimits = {
      memoryBytes: props.memoryBytes ?? req.resources?.memoryBytes ?? this.opts.defaults?.memoryBytes,
      cpus: props.cpus ?? req.resources?.cpus ?? this.opts.defaults?.cpus,
      pids: this.opts.defaults?.pids,
    };
    const network = props.network ?? req.resources?.network ?? false;
    let cgroup: ActionCgroup | undefined;
    this.preparing.add(req.id);
    try {
      cgroup = await this.opts.cgroups?.create(req.id, limits);
    } finally {
      this.preparing.delete(req.id);
    }
    if (this.cancelledEarly.delete(req.id)) {
      // kill() came while the cgroup was being made: the inner runner never heard of this run.
      if (cgroup) this.track(await cgroup.finish());
      return { exitCode: exitCodeForSignal('SIGTERM'), signal: 'SIGTERM', timedOut: false, killed: true };
    }
    const slot = !network && this.opts.slots?.fits(req) ? this.opts.slots.take(req.id) : undefined;
    if (slot) {
      const exit = await this.runInSlot(slot, req, cgroup, limits);
      if (exit) return exit;
      // The slot's agent died before it started the action (it is made anew for later runs): this one takes a sandbox of its own.
    }
    // The action joins its cgroups from inside the sandbox, through descriptors the runner opens.
    const writableFds = cgroup?.procsFiles ?? [];
    const watch = this.opts.memoryWatch && limits.memoryBytes !== undefined ? this.opts.memoryWatch : undefined;
    const actionArgv = watch ? nestArgs({ helper: watch.helper, hide: [], execRoot: req.execRoot, memoryBytes: limits.memoryBytes, argv: req.argv }) : req.argv;
    const cmd = {
      execRoot: req.execRoot,
      workingDirectory: req.workingDirectory,
      argv: actionArgv,
      network,
      pwd: req.env.PWD,
      cgroupFds: writableFds.length,
      readOnly: watch ? [dirname(watch.helper)] : [],
    };
    const argv = [this.opts.bwrap, ...bwrapArgs(this.opts.host, cmd)];
    let exit: RunExit;
    let teardown: { oomKilled: boolean } | undefined;
    try {
      exit = await this.opts.inner.run({ ...req, argv, writableFds });
    } finally {
      teardown = cgroup && this.track(await cgroup.finish());
    }
    if (teardown?.oomKilled) await explainOom(req, limits);
    return this.explainBwrapFailure(exit, req);
  }

  /**
   * In a slot's sandbox: the slot's agent spawns the action, born in its cgroups.
   * Undefined when the agent died before it started the action (its PID namespace
   * then took anything it had begun): the cgroup is left for the caller's next try.
   */
  private async runInSlot(slot: NonNullable<ReturnType<SlotSandboxes['take']>>, req: RunRequest, cgroup: ActionCgroup | undefined, limits: ActionLimits): Promise<RunExit | undefined> {
    let exit: Awaited<ReturnType<SlotSandboxes['run']>>;
    let teardown: { oomKilled: boolean } | undefined;
    try {
      exit = await this.opts.slots!.run(slot, req, cgroup?.procsFiles ?? [], limits.memoryBytes);
    } catch (err) {
      if (err instanceof LauncherDiedError && err.beforeStart) return undefined;
      teardown = cgroup && this.track(await cgroup.finish());
      throw err;
    }
    teardown = cgroup && this.track(await cgroup.finish());
    if (teardown?.oomKilled) await explainOom(req, limits);
    const exitCode = exit.code ?? (exit.spawnError ? SPAWN_FAILURE_EXIT_CODE : exitCodeForSignal(exit.signal));
    return { exitCode, signal: exit.signal ?? undefined, timedOut: exit.timedOut, killed: exit.killed, spawnError: exit.spawnError };
  }

  /**
   * bwrap reports a sandbox it could not make as exit 1 with a "bwrap: " line
   * (Kiln's failure, not the action's); the prelude's shell reports a program
   * that is not there (or not executable) as 127/126 with a
   * "kiln-action: 1: gcc: not found" line (the action's spawn error).
   */
  private async explainBwrapFailure(exit: RunExit, req: RunRequest): Promise<RunExit> {
    if (![1, 125, 126, 127].includes(exit.exitCode) || !req.stderr.path) return exit;
    const last = (await tail(req.stderr.path)).trimEnd().split('\n').at(-1) ?? '';
    const notStarted = new RegExp(`^${PRELUDE_NAME}: \\d+: (?:exec: )?(.*)$`).exec(last);
    if ((exit.exitCode === 126 || exit.exitCode === 127) && notStarted) return { ...exit, exitCode: SPAWN_FAILURE_EXIT_CODE, spawnError: notStarted[1] };
    if (exit.exitCode === 125 && last.startsWith(`${PRELUDE_NAME}: `)) throw new Error(`could not put the action in its cgroup: ${last}`);
    if (exit.exitCode === 1 && last.startsWith('bwrap: ')) throw new Error(`could not make the sandbox: ${last.slice('bwrap: '.length)}`);
    return exit;
  }

  /** Lets the cgroup's removal finish in the background (it waits for dying processes), keeping it off the action's time. */
  private track<T extends { removed?: Promise<void> }>(teardown: T): T {
    const removed = teardown.removed;
    if (removed) {
      const done = removed.catch((err: Error) => process.emitWarning(`kiln: a sandbox cgroup was not removed: ${err.message}`)).then(() => {
        this.removing.delete(done);
      });
      this.removing.add(done);
    }
    return teardown;
  }

  kill(id: string): void {
    if (this.preparing.has(id)) this.cancelledEarly.add(id);
    if (this.opts.slots?.kill(id)) return;
    this.opts.inner.kill(id);
  }

  /** Pause, resume and signals from the farm and the dashboard: bwrap's process group holds the whole sandbox (bwrap-args.ts). */
  signal(id: string, signal: ActionSignal): boolean {
    return this.opts.slots?.signal(id, signal) ?? this.opts.inner.signal?.(id, signal) ?? false;
  }

  /**
   * Before the first action: the first slot's sandbox where there are slots,
   * else the inner runner (the launcher). With slots the inner runner is left
   * to start at the first run that needs a bwrap of its own (network=on, or no
   * idle slot): most engines never have one, and a launcher kept for nothing
   * is a Node process's memory at idle.
   */
  async warm(): Promise<void> {
    await (this.opts.slots ? this.opts.slots.warm() : this.opts.inner.warm?.());
  }

  ready(): RunnerReadiness {
    return this.opts.inner.ready();
  }

  capabilities(): RunnerCapabilities {
    const enforces = this.opts.cgroups?.enforces;
    return {
      name: 'bubblewrap',
      honours: { memoryLimit: !!enforces?.memory || !!this.opts.memoryWatch, cpuLimit: !!enforces?.cpus, networkIsolation: true, priority: this.opts.inner.capabilities().honours.priority },
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.opts.inner.close(), this.opts.slots?.close()]);
    await Promise.all(this.removing);
    await this.opts.cgroups?.close();
  }
}

async function explainOom(req: RunRequest, limits: ActionLimits): Promise<void> {
  await req.stderr.write(
    `kiln: the action went over its memory limit of ${formatBytes(limits.memoryBytes)} and the kernel killed it; ask for more with the platform property memory (e.g. memory=4GiB)\n`,
  );
}

/** The last `bytes` of a file (an action's stderr), '' when it cannot be read. */
export async function tail(path: string, bytes = 1024): Promise<string> {
  try {
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      const buf = Buffer.alloc(Math.min(bytes, size));
      await file.read(buf, 0, buf.length, size - buf.length);
      return buf.toString('utf8');
    } finally {
      await file.close();
    }
  } catch {
    return '';
  }
}

export function formatBytes(n: number | undefined): string {
  if (!n) return 'unlimited';
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}
