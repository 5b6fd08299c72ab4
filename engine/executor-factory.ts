// Composition of the execution path, like engine.ts is of the whole engine:
// runner(s) → the executor of the configured kind → the decorators every
// executor gets. A new way to run a process (sandbox, WASI) is one Runner file
// plus one registerRunnerKind line; a new place to run (an upstream REAPI
// cluster, a peer Kiln) is one Executor file plus one registerExecutorKind line.
import { declareKindName, kindNames } from './common/kind-names';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Clock } from './clock';
import type { KilnConfig } from './config';
import { CachingExecutor } from './execution/caching-executor';
import type { Executor } from './execution/executor';
import { MetadataExecutor } from './execution/metadata-executor';
import { OrphanReapingExecutor } from './execution/orphan-reaping-executor';
import { PlacementExecutor } from './execution/placement-executor';
import { NoRemoteTargetError, PeerPoolExecutor, type PoolTarget } from './execution/peer-pool-executor';
import { RunningCountExecutor } from './execution/running-count-executor';
import type { PeerSet } from './peers/peer-set';
import { RemoteExecutor } from './upstream/remote-executor';
import { UpstreamUnreachableError, type UpstreamClient } from './upstream/upstream-client';
import { ResultShapingExecutor } from './execution/result-shaping-executor';
import { PlatformRoutingRunner } from './execution/platform-routing-runner';
import type { RunPriority, Runner } from './execution/runner';
import type { ApiExecutionPlatform } from './common/api-types';
import { PriorityRunner } from './execution/priority-runner';
import type { ActionCacheStore } from './store/action-cache-store';
import type { BlobStore } from './store/blob-store';
import { LocalExecutor } from './worker/local-executor';
import { ProcessRunner } from './worker/process-runner';
import { WASI_PLATFORM, WasiRunner, wasiAvailable } from './wasi/wasi-runner';
import { isLanMode } from './config';
import { setUpSandbox, type SandboxSetup } from './sandbox/sandbox-setup';
import type { ActionUserDecision } from './sandbox/action-user';
import { ActionUserRunner } from './sandbox/action-user-runner';
import { FixedIdentity, UidPool } from './sandbox/action-identities';
import { claimUids } from './sandbox/uid-claims';
import { killProcessesIn } from './sandbox/uid-processes';
import { closeDataDir } from './sandbox/data-dir-access';

export interface ExecutionContext {
  config: KilnConfig;
  store: BlobStore;
  actionCache: Pick<ActionCacheStore, 'put'>;
  clock: Clock;
  log: (line: string) => void;
  /** The sandbox decided at start: wraps the process runner when it is on. */
  sandbox?: SandboxSetup;
  /** The priority each run gets as it starts (the farm's mode); absent: the runner's default. */
  priority?: () => RunPriority;
  /** The upstream REAPI server (`upstream:`), when there is one: actions may run there by `placement:`. */
  upstream?: UpstreamClient;
  /** The execution switch; with an upstream, off sends local-first actions there. */
  localEnabled?: () => boolean;
  /** Who host actions run as, decided at start (action-user:); absent or without a user: Kiln's own. */
  actionUser?: ActionUserDecision;
  /** Where exec roots go when not in {dataDir}/build: the build folder actions as their own user can reach (build-folder.ts). */
  buildRoot?: string;
  /** Peer Kilns (`peers:`): overflow goes to them first, then to the upstream. */
  peers?: PeerSet;
  /** Tells how many actions run on the upstream now (for /api/status); set by placeExecutor. */
  upstreamRunning?: { count: () => number };
}

/** Builds the Runner a `runner:` value names. */
export type RunnerKind = (ctx: ExecutionContext) => Runner | Promise<Runner>;
/** Builds the (undecorated) Executor an `executor:` value names; `runner()` builds the configured runner when it needs one. */
export type ExecutorKind = (ctx: ExecutionContext & { runner: () => Promise<Runner> }) => Executor | Promise<Executor>;

const runnerKinds = new Map<string, RunnerKind>();
const executorKinds = new Map<string, ExecutorKind>();

export function registerRunnerKind(name: string, kind: RunnerKind): void {
  runnerKinds.set(name, kind);
  declareKindName('runner', name);
}

export function registerExecutorKind(name: string, kind: ExecutorKind): void {
  executorKinds.set(name, kind);
  declareKindName('executor', name);
}

export function runnerKindNames(): string[] {
  return kindNames('runner');
}

export function executorKindNames(): string[] {
  return kindNames('executor');
}

// --- The kinds Kiln ships with: one line each. --------------------------------
registerRunnerKind('process', () => new ProcessRunner());
registerRunnerKind('wasi', (ctx) => new WasiRunner({ log: ctx.log, store: ctx.store }));
registerRunnerKind('bubblewrap', (ctx) =>
  (ctx.sandbox?.status.enabled
    ? ctx.sandbox
    : setUpSandbox({
        mode: 'on',
        lanMode: isLanMode(ctx.config),
        dataDir: ctx.config.dataDir,
        defaults: { memoryBytes: ctx.config.actionMemoryBytes, cpus: ctx.config.actionCpus, pids: ctx.config.actionProcesses },
        actionUser: ctx.actionUser,
      })
  ).wrap(new ProcessRunner()),
);
registerExecutorKind('local', async (ctx) =>
  LocalExecutor.create({
    store: ctx.store,
    buildRoot: ctx.buildRoot ?? join(ctx.config.dataDir, 'build'),
    runner: await ctx.runner(),
    slots: ctx.config.concurrency,
    workerName: workerName(),
    clock: ctx.clock,
    log: ctx.log,
    logDir: join(ctx.config.dataDir, 'logs'),
  }),
);

/** Host actions as the action user, with Kiln's data folder closed to it (engine/sandbox/action-user.ts). */
async function asActionUser(runner: Runner, ctx: ExecutionContext): Promise<Runner> {
  const user = ctx.actionUser?.user;
  if (!user) return runner;
  // Closed before anything runs; the exec roots are elsewhere (ctx.buildRoot).
  await closeDataDir(ctx.config.dataDir);
  const uids = ctx.actionUser?.uids;
  if (!uids) return new ActionUserRunner(runner, new FixedIdentity(user));
  // This Kiln's uids, claimed until it stops, so another Kiln on the host never hands out the same ones.
  const claim = claimUids(uids === 'default' ? undefined : uids, ctx.config.dataDir);
  ctx.log(`kiln: action uids ${claim.range.first}-${claim.range.last} are this Kiln's (claimed in /run/kiln-uids)`);
  const left = await killProcessesIn(claim.range);
  if (left) ctx.log(`kiln: killed ${left} process(es) left running as those uids (by a Kiln that stopped without cleaning up)`);
  return new ActionUserRunner(runner, new UidPool(claim.range, { log: ctx.log }), () => claim.release());
}

/** An unknown kind, in the one-line style of a bad setting (config-load turns it into exit code 2). */
export class UnknownKindError extends Error {}

/** The executor `config.executor` names, built on `config.runner`, with every decorator. */
export async function createExecutor(ctx: ExecutionContext): Promise<Executor> {
  const kind = executorKinds.get(ctx.config.executor);
  if (!kind) throw new UnknownKindError(unknownKind('executor', ctx.config.executor, executorKindNames()));
  const runner = async () => {
    const make = runnerKinds.get(ctx.config.runner);
    if (!make) throw new UnknownKindError(unknownKind('runner', ctx.config.runner, runnerKindNames()));
    const runner = await make(ctx);
    // The sandbox wraps a runner that starts host processes; other runners (and bubblewrap itself) stay as they are.
    const host = ctx.config.runner === 'process' && ctx.sandbox ? ctx.sandbox.wrap(runner) : runner;
    const routed = withWasiRoute(await asActionUser(host, ctx), ctx);
    return ctx.priority ? new PriorityRunner(routed, ctx.priority) : routed;
  };
  return decorateExecutor(placeExecutor(await kind({ ...ctx, runner }), ctx), { ...ctx, orphanTimeoutMs: ctx.config.orphanTimeoutMs });
}

/** Whether actions can run on the upstream: there is one and `placement:` is not `local`. */
export function runsUpstream(config: Pick<KilnConfig, 'upstream' | 'placement'>): boolean {
  return config.upstream !== undefined && config.placement !== 'local';
}

/**
 * `local` as it is, or, with an upstream and a placement other than `local`,
 * a PlacementExecutor choosing between it and the upstream per action.
 */
export function placeExecutor(
  local: Executor,
  ctx: Pick<ExecutionContext, 'config' | 'store' | 'clock' | 'log' | 'upstream' | 'localEnabled' | 'peers' | 'upstreamRunning'>,
): Executor {
  if (ctx.peers && ctx.config.placement !== 'local') return placeWithPeers(local, ctx.peers, ctx);
  if (!ctx.upstream || !runsUpstream(ctx.config)) return local;
  const remote = countUpstream(new RemoteExecutor({ upstream: ctx.upstream, store: ctx.store, clock: ctx.clock, slots: ctx.config.upstreamSlots }), ctx);
  return new PlacementExecutor(local, remote, {
    policy: ctx.config.placement,
    localSlots: () => ctx.config.concurrency,
    localEnabled: ctx.localEnabled,
    isUnreachable: (err) => err instanceof UpstreamUnreachableError,
    log: ctx.log,
  });
}

/**
 * Local, then a pool of the peers and (last, when there is one) the upstream:
 * the placement policy decides local or the pool, the pool which remote, and
 * whatever no remote runs comes back here.
 */
function placeWithPeers(
  local: Executor,
  peers: PeerSet,
  ctx: Pick<ExecutionContext, 'config' | 'store' | 'clock' | 'log' | 'upstream' | 'localEnabled' | 'upstreamRunning'>,
): Executor {
  let upstreamTarget: PoolTarget | undefined;
  if (ctx.upstream && runsUpstream(ctx.config)) {
    const client = ctx.upstream;
    const remote = countUpstream(new RemoteExecutor({ upstream: client, store: ctx.store, clock: ctx.clock, slots: ctx.config.upstreamSlots }), ctx);
    upstreamTarget = { name: 'upstream', executor: remote, room: () => (client.reachable ? ctx.config.upstreamSlots - remote.running : 0) };
  }
  const pool = new PeerPoolExecutor({ targets: () => peers.targets(), overflow: upstreamTarget, log: ctx.log });
  return new PlacementExecutor(local, pool, {
    policy: ctx.config.placement,
    localSlots: () => ctx.config.concurrency,
    localEnabled: ctx.localEnabled,
    isUnreachable: (err) => err instanceof NoRemoteTargetError || err instanceof UpstreamUnreachableError,
    log: ctx.log,
  });
}

function countUpstream(remote: Executor, ctx: Pick<ExecutionContext, 'upstreamRunning'>): RunningCountExecutor {
  const counted = new RunningCountExecutor(remote);
  if (ctx.upstreamRunning) ctx.upstreamRunning.count = () => counted.running;
  return counted;
}

/** Actions whose platform says OSFamily=wasi go to the WASI runner, whatever `runner:` runs the rest. */
function withWasiRoute(runner: Runner, ctx: ExecutionContext): Runner {
  if (ctx.config.runner === 'wasi') return runner;
  const wasi = new WasiRunner({ log: ctx.log, store: ctx.store });
  return new PlatformRoutingRunner([{ ...WASI_PLATFORM, runner: wasi }], runner);
}

/** What /api/status advertises: the default runner, and the platform properties that choose the others. */
export function executionPlatforms(config: Pick<KilnConfig, 'runner'>): ApiExecutionPlatform[] {
  const platforms: ApiExecutionPlatform[] = [{ properties: {}, runner: config.runner }];
  if (config.runner !== 'wasi' && wasiAvailable()) platforms.push({ properties: { [WASI_PLATFORM.property]: WASI_PLATFORM.value }, runner: 'wasi' });
  return platforms;
}

export interface DecoratorOptions extends Pick<ExecutionContext, 'actionCache' | 'log'> {
  clock?: Clock;
  /** Cancel runs nobody has watched for this long; undefined or 0: never. */
  orphanTimeoutMs?: number;
}

/**
 * The behaviours every executor gets, innermost first: result shaping (v2.0 /
 * v2.1 fields), metadata and timestamps, the orphan reaper, then the action
 * cache write (which must see the shaped result with its metadata, and never a
 * reaped one).
 */
export function decorateExecutor(inner: Executor, ctx: DecoratorOptions): Executor {
  let executor: Executor = new ResultShapingExecutor(inner);
  executor = new MetadataExecutor(executor, workerName());
  executor = new OrphanReapingExecutor(executor, { timeoutMs: ctx.orphanTimeoutMs ?? 0, clock: ctx.clock, log: ctx.log });
  executor = new CachingExecutor(executor, ctx.actionCache, ctx.log);
  return executor;
}

export function unknownKind(key: string, value: string, known: string[]): string {
  return `${key}: "${value}" is not a known ${key}; use ${known.join(' or ')}`;
}

function workerName(): string {
  return `kiln@${hostname()}`;
}
