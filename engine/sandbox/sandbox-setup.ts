// Whether actions run sandboxed, decided once at start from `sandbox:`
// (auto | on | off), LAN mode and what this host allows (auto: on wherever
// bubblewrap works, root or not, LAN mode or loopback), and the runner
// decorator that does it. The decision is one record the logs, /api/status and
// the dashboard all show, with the reason when the sandbox is off.
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { availableParallelism, homedir, totalmem } from 'node:os';
import { join } from 'node:path';
import type { ApiSandbox, SandboxMode } from '../common/api-types';
import { ConfigError } from '../config-load';
import type { Runner } from '../execution/runner';
import { probeBubblewrap, type BwrapProbe } from './bwrap-probe';
import { detectCgroups, type ActionLimits, type CgroupDetection } from './cgroups';
import type { ActionUserDecision } from './action-user';
import { PrewarmedCgroups } from './prewarmed-cgroups';
import { ReusedCgroups } from './reused-cgroups';
import { SandboxRunner } from './sandbox-runner';
import { SlotSandboxes } from './slot-sandboxes';
import { isWithin } from './bwrap-args';
import { buildFolderPath } from './build-folder';
import { findNativeHelper, findNestHelper } from './nest-helper';
import { SANDBOX_EXEC, SeatbeltRunner } from './seatbelt-runner';

export interface SandboxSetupOptions {
  mode: SandboxMode;
  lanMode: boolean;
  dataDir: string;
  /** Limits for actions whose platform asks for none (config action-memory, action-cpus, action-processes). */
  defaults?: ActionLimits;
  /** Who actions run as (action-user.ts): bubblewrap is tried as that user, and the status names it. */
  actionUser?: ActionUserDecision;
  /** Where exec roots are made when actions run as other users; build-folder.ts's path by default. */
  buildRoot?: string;
  /** Actions at once (concurrency): the most sandboxes made ahead, one per slot. Default: the CPU count. */
  slots?: number;
  /** Probes, replaceable in tests. */
  probe?: () => BwrapProbe;
  cgroups?: () => CgroupDetection;
  /** Whether Kiln runs as root; process.getuid() by default. */
  isRoot?: boolean;
  /** Starts a trial slot sandbox: undefined when it works, else why not (SlotSandboxes.trial by default). */
  slotTrial?: (slots: SlotSandboxes) => string | undefined;
  /** Not root: where kiln-nest is, or why there is none (nest-helper.ts's findNestHelper by default). */
  nestHelper?: () => { path: string; why?: undefined } | { path?: undefined; why: string };
  /** Where kiln-spawn is, or why there is none (findNativeHelper('kiln-spawn') by default); without it, slot agents fork each action. */
  spawnHelper?: () => { path: string; why?: undefined } | { path?: undefined; why: string };
  /** The OS (process.platform by default): darwin sandboxes with sandbox-exec, others with bubblewrap. */
  platform?: NodeJS.Platform;
  /** macOS: the sandbox-exec binary, undefined when there is none (/usr/bin/sandbox-exec if it exists, by default). */
  sandboxExec?: () => string | undefined;
  /** macOS: the home, hidden from actions (os.homedir() by default). */
  home?: string;
}

export interface SandboxSetup {
  status: ApiSandbox;
  /** Wraps the runner that starts processes when the sandbox is on; returns it unchanged when off. */
  wrap(inner: Runner): Runner;
}

/** Processes and threads an action may have at once unless configured otherwise (a fork bomb stops here). */
export const DEFAULT_PIDS_LIMIT = 8192;

/** Memory an action may use unless it asks for a limit: half the machine, so one action cannot starve the engine. */
export function defaultMemoryLimit(): number {
  return Math.floor(totalmem() / 2);
}

export function setUpSandbox(opts: SandboxSetupOptions): SandboxSetup {
  const actionUser = opts.actionUser && (opts.actionUser.user?.label ?? `Kiln's own user: ${opts.actionUser.reason}`);
  const off = (reason: string): SandboxSetup => ({ status: { enabled: false, mode: opts.mode, reason, actionUser }, wrap: (inner) => inner });
  // Who runs the actions when the sandbox is off: the action user keeps the store out of reach even then.
  const who = opts.actionUser?.user ? `as ${opts.actionUser.user.label}` : "as Kiln's user, and can read what it can";
  if (opts.mode === 'off') return off(`sandbox: off in the configuration; actions run unsandboxed, ${who}`);
  if ((opts.platform ?? process.platform) === 'darwin') return setUpSeatbelt(opts, off, who);
  const probe = (opts.probe ?? (() => probeBubblewrap({ dataDir: opts.dataDir, runAs: opts.actionUser?.user })))();
  if (!probe.available) {
    if (opts.mode === 'on') throw new ConfigError(`sandbox: on, but ${probe.reason}; or start with --sandbox off`);
    if (opts.lanMode) return off(`LAN mode asks for the sandbox, but ${probe.reason}; actions from the LAN run unsandboxed, ${who}`);
    return off(`sandbox: auto, but ${probe.reason}; actions run unsandboxed, ${who}`);
  }
  const cgroups = (opts.cgroups ?? (() => detectCgroups()))();
  const defaults: ActionLimits = { memoryBytes: defaultMemoryLimit(), pids: DEFAULT_PIDS_LIMIT, ...definedOnly(opts.defaults ?? {}) };
  const slotted = slotSandboxes(opts, probe, cgroups, defaults);
  const limits = limitsText(cgroups, slotted.slots?.nest);
  // auto is on wherever bubblewrap works: even a bwrap per action (not root) costs less than what an
  // unsandboxed action can reach on a desk, as Bazel's own sandbox, on by default, judges (README, "Cost").
  const why =
    opts.mode === 'on'
      ? 'sandbox: on in the configuration'
      : opts.lanMode
        ? 'sandbox: auto, and this is LAN mode'
        : 'sandbox: auto, and bubblewrap works here';
  const how = slotted.slots
    ? slotted.slots.nest
      ? "each action runs in a sandbox made ahead for its slot (Kiln is not root: an unprivileged one), in user, mount, PID and IPC namespaces of its own that show it only its exec root, as Kiln's user (an action with network=on gets a sandbox of its own)"
      : 'each action runs in a sandbox made ahead for its slot, as a uid of its own (an action with network=on gets a sandbox of its own)'
    : `each action gets a sandbox of its own (none made ahead per slot: ${slotted.why})${opts.mode === 'auto' ? ', which costs more per action than one made ahead; sandbox: off trades the sandbox for that time' : ''}`;
  return {
    status: {
      enabled: true,
      mode: opts.mode,
      runner: 'bubblewrap',
      reason: `${why}; ${how}`,
      limits,
      network: 'off unless the action sets the platform property network=on',
      actionUser,
    },
    wrap: (inner) =>
      new SandboxRunner({
        inner,
        bwrap: probe.bwrap,
        host: probe.host,
        // One cgroup made ahead with the defaults (most actions ask for no limits of their own), and
        // finished runs' cgroups kept for the next runs with the same limits.
        cgroups: cgroups.limiter && new PrewarmedCgroups(new ReusedCgroups(cgroups.limiter), defaults),
        defaults,
        // Where the sandbox is on, the configuration asked for every action to be in it.
        allowOptOut: false,
        slots: slotted.slots && new SlotSandboxes(slotted.slots),
        // Actions outside the slots (network=on, none idle) get kiln-nest's watch too.
        memoryWatch: slotted.slots?.nest?.watchMemory ? { helper: slotted.slots.nest.helper } : undefined,
      }),
  };
}

/** What limits actions, as the status says it: the cgroups', or kiln-nest's where there are none. */
function limitsText(cgroups: CgroupDetection, nest?: { processes?: number; watchMemory?: boolean }): string {
  if (cgroups.limiter) {
    const enforced = Object.entries(cgroups.limiter.enforces).filter(([, on]) => on).map(([k]) => k);
    const watched = nest?.watchMemory ? '; memory watched by kiln-nest' : '';
    return `${cgroups.limiter.name}: ${enforced.join(', ')}${watched}`;
  }
  if (!nest) return `none (${cgroups.reason})`;
  const parts = [
    ...(nest.processes ? [`at most ${nest.processes} processes per action`] : []),
    ...(nest.watchMemory ? [`memory watched every 20 ms (its processes' resident memory; over the limit, killed)`] : []),
  ];
  return `kiln-nest: ${parts.join('; ')}; no cpus limit (${cgroups.reason})`;
}

/**
 * macOS: each action through sandbox-exec with a profile of its own
 * (seatbelt-runner.ts), wherever sandbox-exec is there. Not tried on a real Mac.
 */
function setUpSeatbelt(opts: SandboxSetupOptions, off: (reason: string) => SandboxSetup, who: string): SandboxSetup {
  const sandboxExec = (opts.sandboxExec ?? (() => (existsSync(SANDBOX_EXEC) ? SANDBOX_EXEC : undefined)))();
  if (!sandboxExec) {
    const missing = `sandbox-exec (${SANDBOX_EXEC}) is not on this Mac`;
    if (opts.mode === 'on') throw new ConfigError(`sandbox: on, but ${missing}; or start with --sandbox off`);
    if (opts.lanMode) return off(`LAN mode asks for the sandbox, but ${missing}; actions from the LAN run unsandboxed, ${who}`);
    return off(`sandbox: auto, but ${missing}; actions run unsandboxed, ${who}`);
  }
  const why = opts.mode === 'on' ? 'sandbox: on in the configuration' : opts.lanMode ? 'sandbox: auto, and this is LAN mode' : 'sandbox: auto, and sandbox-exec is here';
  const hidden = [opts.home ?? homedir(), opts.dataDir];
  return {
    status: {
      enabled: true,
      mode: opts.mode,
      runner: 'sandbox-exec',
      reason: `${why}; each action runs under sandbox-exec with a profile of its own: its exec root and a temporary folder of its own writable, the home and Kiln's data folder unreadable (not yet tried on a real Mac)`,
      limits: 'none (macOS has no cgroups: memory, cpus and processes are not limited)',
      network: 'off unless the action sets the platform property network=on',
      actionUser: opts.actionUser && (opts.actionUser.user?.label ?? `Kiln's own user: ${opts.actionUser.reason}`),
    },
    wrap: (inner) => new SeatbeltRunner({ inner, sandboxExec, hidden, allowOptOut: false }),
  };
}

/**
 * Whether actions can run in sandboxes made ahead, one per slot
 * (slot-sandboxes.ts), and with what; or why not. It takes root (the agent
 * inside becomes each action's uid), a uid of its own per action (one user for
 * all would share the slot and the build folder), limits whose cgroup folders
 * are fixed, and a trial slot that starts.
 */
function slotSandboxes(
  opts: SandboxSetupOptions,
  probe: Extract<BwrapProbe, { available: true }>,
  cgroups: CgroupDetection,
  defaults: ActionLimits,
): { slots: ConstructorParameters<typeof SlotSandboxes>[0]; why?: undefined } | { slots?: undefined; why: string } {
  const isRoot = opts.isRoot ?? process.getuid?.() === 0;
  const impossible = slotsImpossible(opts, isRoot);
  if (impossible) return { why: impossible };
  if (cgroups.limiter && !cgroups.limiter.parentDirs) return { why: `${cgroups.limiter.name} limits are not joined from a slot yet` };
  // Not root, the action shares the agent's uid, so it must never reach the cgroups the agent may write: kiln-nest
  // joins them itself, then makes a cgroup namespace there and covers the agent's folder, the slot's only way to them.
  let nest: { helper: string; processes?: number; watchMemory?: boolean } | undefined;
  if (!isRoot) {
    const helper = (opts.nestHelper ?? findNestHelper)();
    if (!helper.path) return { why: `Kiln is not root, and ${helper.why}` };
    // Without a pids cgroup, kiln-nest counts the action's processes in its own user namespace instead;
    // without a memory cgroup, it watches the action's memory.
    nest = { helper: helper.path, processes: cgroups.limiter?.enforces.pids ? undefined : defaults.pids, watchMemory: !cgroups.limiter?.enforces.memory };
  }
  let buildRoot: string;
  const logDir = join(opts.dataDir, 'logs');
  try {
    mkdirSync(logDir, { recursive: true });
    // Not root, the exec roots stay in the data folder's build/ (engine.ts).
    const build = opts.buildRoot ?? (isRoot ? buildFolderPath(opts.dataDir, process.getuid?.() ?? 0) : join(opts.dataDir, 'build'));
    if (!isRoot) mkdirSync(build, { recursive: true });
    buildRoot = realpathSync(build);
  } catch (err) {
    return { why: `its folders are not ready: ${(err as Error).message}` };
  }
  // The agent empties the slot's /tmp and /dev/shm after each action: exec roots must not be there.
  const scratch = ['/tmp', '/dev/shm'].find((dir) => isWithin(buildRoot, dir));
  if (scratch) return { why: `the build folder ${buildRoot} is in ${scratch}, which a slot's sandbox empties after each action` };
  const slots = {
    bwrap: probe.bwrap,
    host: probe.host,
    buildRoot,
    logDir,
    cgroupParents: cgroups.limiter?.parentDirs ?? [],
    max: Math.max(1, opts.slots ?? availableParallelism()),
    nest,
    spawner: (opts.spawnHelper ?? (() => findNativeHelper('kiln-spawn')))().path,
  };
  const failed = (opts.slotTrial ?? ((s) => s.trial()))(new SlotSandboxes(slots));
  return failed ? { why: failed } : { slots };
}

/**
 * Why sandboxes made ahead per slot cannot be had here, found without starting
 * anything; undefined if they may. As root they take a uid per action; not
 * root, actions run as Kiln's user and kiln-nest keeps them apart instead.
 */
function slotsImpossible(opts: SandboxSetupOptions, isRoot: boolean): string | undefined {
  if (!isRoot) return opts.actionUser?.user ? 'Kiln is not root, so it cannot start actions as another user from inside one' : undefined;
  if (!opts.actionUser?.uids) return 'actions do not each run as a uid of their own (action-user: auto, as root)';
  return undefined;
}

function definedOnly(limits: ActionLimits): ActionLimits {
  return Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined));
}
