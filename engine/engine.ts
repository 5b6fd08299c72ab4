// The composition root: builds the stores, the event bus and the gRPC server
// from a KilnConfig, and takes them down again in order. Components are wired
// here and nowhere else; each section below is where a new one plugs in.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { systemClock, uuidIds, type Clock, type IdSource } from './clock';
import { isLanMode, type KilnConfig } from './config';
import { savedSettingOverridden } from './config-load';
import { EventBus } from './events/event-bus';
import {
  ActionCacheService,
  ByteStreamService,
  CapabilitiesService,
  ContentAddressableStorageService,
  LogStreamService,
  ExecutionService,
  FetchService,
  PushService,
  OperationsService,
  PublishBuildEventService,
} from './grpc/services';
import { createBuildEventService } from './bes/build-event-service';
import { refuseMalformed } from './grpc/malformed-requests';
import { createActionCacheService } from './reapi/action-cache';
import { createByteStreamService, type LiveResourceReader, type LiveResourceWriter } from './reapi/bytestream';
import { createCapabilitiesService } from './reapi/capabilities';
import { COMPRESSED_UPLOAD_IDLE_MS, CompressedUploads } from './reapi/compressed-uploads';
import { DiskCompressedSpool } from './reapi/compressed-spool';
import { createCasService } from './reapi/cas';
import { DiskActionCacheStore, type ActionCacheStore } from './store/action-cache-store';
import { UnchangedResultsActionCache } from './store/unchanged-results';
import { BlobNotFoundError, type BlobStore } from './store/blob-store';
import type { BlobDigest } from './digest';
import type { Readable } from 'node:stream';
import { DiskBlobStore } from './store/disk-store';
import { ObservedBlobStore } from './store/observed-store';
import { SmallBlobCache } from './store/small-blob-cache';
import { LinkedBlobVerifier } from './store/linked-blob-verifier';
import { checkCacheBudget, checkConcurrency, checkInvocationHistory, checkInvocationHistoryDays, type SettingName } from './common/settings-limits';
import { Observability } from './http/observability';
import { loadOrCreateToken } from './http/auth';
import { prepareAccess, type Access } from './lan/access';
import type { Advertisement } from './lan/discovery';
import { advertiseInLanMode, grpcCredentials, grpcInterceptors } from './lan/wiring';
import { httpAccessOptions } from './http/lan-access';
import { createExecutionService } from './reapi/execution';
import { observeRequestOrigins } from './invocations/request-metadata';
import type { RequestOrigin } from './common/invocation-types';
import { createOperationsService } from './reapi/operations';
import { createFetchService, createPushService } from './reapi/remote-asset';
import { AssetFetcher } from './asset/asset-fetcher';
import { AssetIndex } from './asset/asset-index';
import { Scheduler } from './scheduler/scheduler';
import { saveSettings, type SavedSettings } from './settings';
import { lockDataDir, type DataDirLock } from './util/data-dir-lock';
import type { Executor } from './execution/executor';
import { createExecutor, decorateExecutor, executionPlatforms, placeExecutor, runsUpstream } from './executor-factory';
import { setUpSandbox, type SandboxSetupOptions } from './sandbox/sandbox-setup';
import { decideActionUser } from './sandbox/action-user';
import { buildFolderPath, prepareBuildFolder, sameFileSystem } from './sandbox/build-folder';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { ActionSignal, FarmMode } from './common/farm-modes';
import { defaultDeskSignals, type DeskSignals } from './governor/desk-signals';
import { Farm, type FarmSlots } from './governor/farm';
import type { SlotGovernor } from './governor/slot-governor';
import { HealthMonitor, type HealthTuning } from './health/health-monitor';
import type { FarmControl } from './http/farm-routes';
import { loadUpstreamCa, UpstreamClient } from './upstream/upstream-client';
import { ReadThroughActionCache, ReadThroughBlobStore } from './upstream/read-through-store';
import { WriteThroughQueue } from './upstream/write-through-queue';
import { PeerSet } from './peers/peer-set';
import type { ApiSandbox, UpstreamStatus } from './common/api-types';

export interface EngineOptions {
  config: KilnConfig;
  /** Replaces the on-disk CAS (tests). The engine still wraps it for events and closes it on stop. */
  blobStore?: BlobStore;
  /** Replaces the on-disk action cache (tests). Closed on stop. */
  actionCache?: ActionCacheStore;
  clock?: Clock;
  ids?: IdSource;
  /** Human-readable progress lines (the CLI sends them to stderr). */
  log?: (line: string) => void;
  /**
   * Runs actions in place of the one `config.executor` names (tests inject a fake); the
   * engine still adds the decorators (caching, metadata, result shaping). Closed on stop.
   */
  executor?: Executor;
  /** What the farm knows of the desk; /proc (or systeminformation) by default. The desktop app adds powerMonitor. */
  deskSignals?: DeskSignals;
  /** Cores the all-out mode uses and the governor reckons with; the machine's by default. */
  cores?: number;
  /** Tests: a governor with short delays. */
  governor?: SlotGovernor;
  /** Tests: a health monitor with short windows. */
  healthTuning?: Partial<HealthTuning>;
  /** Tests: where the sandbox finds its native helpers (a slot without kiln-spawn, say). */
  sandboxHelpers?: Pick<SandboxSetupOptions, 'spawnHelper'>;
}

/** Settings the dashboard can change while Kiln runs. */
export interface LiveSettings {
  concurrency: number;
  cacheSizeBytes: number;
  /** The invocation history budget: invocations kept, and for how many days. */
  invocationHistory: number;
  invocationHistoryDays: number;
}

export interface SettingsUpdate {
  /** Took effect at once (and were saved). */
  appliedNow: Exclude<SettingName, 'lan'>[];
  /** Saved, but this Kiln cannot change them live (a store without a budget to change). */
  appliedAtRestart: Exclude<SettingName, 'lan'>[];
}

/** Room above max_batch_total_size_bytes so our own check, not the transport, answers oversized batches. */
const MESSAGE_LIMIT_HEADROOM = 64 * 1024 * 1024;
const DEFAULT_DRAIN_MS = 5_000;
/** Longest download timeout a Remote Asset request may ask for. */
const ASSET_MAX_TIMEOUT_MS = 60 * 60_000;

export class Engine {
  /** ByteStream asks these before parsing blob names; components add theirs (live logs) at start. */
  readonly liveReaders: LiveResourceReader[] = [];
  /** ByteStream asks these before parsing upload names (log streams written by clients). */
  readonly liveWriters: LiveResourceWriter[] = [];
  /** Live logs, metrics, history and the dashboard HTTP API (engine/http/observability.ts). */
  observability!: Observability;
  /** Queue, worker slots and operations; undefined when the engine has no executor. */
  scheduler?: Scheduler;
  /** The polite farm: mode, slots that follow the machine, pause (engine/governor/). */
  farm?: Farm;
  /** Named problems (engine/health/). */
  health?: HealthMonitor;
  /** The sandbox as decided at start; undefined when the executor was given rather than configured. */
  private sandboxStatus?: ApiSandbox;
  private executor?: Executor;
  private readonly server: grpc.Server;
  private port = 0;
  private executionOn: boolean;
  private inFlight = new InFlight();
  private stopping: Promise<void> | undefined;
  private advertisement?: Advertisement;
  private dataDirLock?: DataDirLock;
  /** The upstream REAPI server (config `upstream:`), when there is one. */
  upstream?: UpstreamClient;
  /** What still has to be copied to the upstream (write-through). */
  upstreamQueue?: WriteThroughQueue;
  /** Peer Kilns that take this one's overflow (config `peers:`), when there are any. */
  peers?: PeerSet;
  /** How many of our actions run on the upstream now (the executor factory fills it in). */
  private readonly upstreamRunning = { count: () => 0 };

  private constructor(
    readonly config: KilnConfig,
    readonly events: EventBus,
    readonly store: BlobStore,
    readonly actionCache: ActionCacheStore,
    readonly clock: Clock,
    readonly ids: IdSource,
    private readonly log: (line: string) => void,
    /** Tokens, the access policy and TLS material (engine/lan/access.ts). */
    readonly access: Access,
  ) {
    this.executionOn = config.executionEnabled;
    const messageLimit = config.maxBatchTotalSizeBytes + MESSAGE_LIMIT_HEADROOM;
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': messageLimit,
      'grpc.max_send_message_length': messageLimit,
      // Kiln serves no channelz service; tracking every call for it cost ~50 µs of CPU per call.
      'grpc.enable_channelz': 0,
      // Every call passes the access policy before any service sees it (no interceptor where it admits everyone).
      interceptors: grpcInterceptors(access, config.host, events, () => clock.now()),
    });
  }

  static async start(opts: EngineOptions): Promise<Engine> {
    const { config } = opts;
    await mkdir(config.dataDir, { recursive: true });
    // One engine per data folder: a second would clear the first one's build/ and race on the index.
    const lock = lockDataDir(config.dataDir);
    try {
      // Our own copy: live settings changes update it (and with it /api/status), not the caller's object.
      return await Engine.open({ ...opts, config: { ...config } }, lock);
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  private static async open(opts: EngineOptions, lock: DataDirLock): Promise<Engine> {
    const { config } = opts;
    const clock = opts.clock ?? systemClock;
    const log = opts.log ?? (() => {});
    // --- Access: tokens, policy, TLS. First, so a bad certificate fails before anything opens.
    const access = prepareAccess(config, loadOrCreateToken(config.dataDir));
    if (isLanMode(config) && !access.tls) log('kiln: warning: LAN mode with tls off: tokens and build data cross the network unencrypted');
    // Who host actions run as (a bad action-user: stops here too); the sandbox is tried as that user,
    // and a sandbox that cannot start stops Kiln with its own one line before this is logged.
    // Their exec roots then go to a build folder outside the data folder, which closes to 0700 (build-folder.ts).
    const buildDir = buildFolderPath(config.dataDir, process.getuid?.() ?? 0);
    const actionUser = opts.executor ? undefined : decideActionUser(config.actionUser, { buildDir, uids: config.actionUids });
    if (actionUser?.user) prepareBuildFolder(buildDir, process.getuid?.() ?? 0);
    // --- The sandbox: decided before anything opens (sandbox: on without bubblewrap stops here).
    const sandbox = opts.executor
      ? undefined
      : setUpSandbox({
          mode: config.sandbox,
          lanMode: isLanMode(config),
          dataDir: config.dataDir,
          defaults: { memoryBytes: config.actionMemoryBytes, cpus: config.actionCpus, pids: config.actionProcesses },
          actionUser,
          slots: config.concurrency,
          ...opts.sandboxHelpers,
        });
    if (actionUser) log(`kiln: actions run as ${actionUser.user?.label ?? 'Kiln\'s own user'}: ${actionUser.reason}`);
    if (sandbox) log(`kiln: sandbox ${sandbox.status.enabled ? `on (${sandbox.status.runner}; limits: ${sandbox.status.limits})` : 'off'}: ${sandbox.status.reason}`);

    // --- Storage -------------------------------------------------------------
    const events = new EventBus();
    const rawStore =
      opts.blobStore ??
      (await DiskBlobStore.open({ dir: join(config.dataDir, 'cas'), budgetBytes: config.cacheSizeBytes, events, clock }));
    let actionCache: ActionCacheStore;
    let upstreamQueue: WriteThroughQueue | undefined;
    try {
      // An action run again with the same outcome keeps its entry rather than rewriting it (unchanged-results.ts).
      actionCache = opts.actionCache ?? new UnchangedResultsActionCache(await DiskActionCacheStore.open({ dir: join(config.dataDir, 'ac'), clock }));
    } catch (err) {
      await rawStore.close();
      throw err;
    }
    // --- Upstream REAPI server: the local stores become a cache in front of its own.
    const upstream = startUpstream(config, clock);
    let cas: BlobStore = rawStore;
    if (upstream) {
      const queue = new WriteThroughQueue({ upstream, store: rawStore, actionCache, dir: config.dataDir, log });
      cas = new ReadThroughBlobStore(rawStore, upstream, queue, log);
      actionCache = new ReadThroughActionCache(actionCache, rawStore, upstream, queue, log);
      upstreamQueue = queue;
    }
    // Small blobs (Action, Command, Directory protos) read again and again come from memory (small-blob-cache.ts).
    // Blobs hard-linked into running actions are verified before they are served (linked-blob-verifier.ts).
    const store = new ObservedBlobStore(new SmallBlobCache(new LinkedBlobVerifier(cas, log)), events, clock);
    if (actionUser?.user && !opts.blobStore && !sameFileSystem(join(config.dataDir, 'cas'), buildDir)) {
      log(`kiln: the exec roots (${buildDir}) are on another file system than the CAS: inputs are copied into them, not hard-linked`);
    }
    const engine = new Engine(config, events, store, actionCache, clock, opts.ids ?? uuidIds, log, access);
    engine.sandboxStatus = sandbox?.status;
    engine.dataDirLock = lock;
    engine.upstream = upstream;
    engine.upstreamQueue = upstreamQueue;

    try {
      // --- Peer Kilns: each one's status is read every few seconds; what they offer resizes the scheduler.
      if (config.peers) {
        engine.peers = new PeerSet({ config, store, clock, log, ownGrpcPort: () => engine.grpcPort, onChange: () => engine.resizeScheduler() });
      }
      // --- Scheduler, workers, live logs: create here, before services that use them.
      engine.observability = new Observability({
        config,
        events,
        storeStats: () => store.stats(),
        largestBlobs: store.largest ? (limit) => store.largest!(limit) : undefined,
        readBlob: (hash, size, limit) => readBlobOrUndefined(store, { fn: 'sha256', hash, size }, limit),
        clock,
        sandbox: sandbox?.status,
        log,
      });
      engine.liveReaders.push(engine.observability.logStreams);
      engine.liveWriters.push(engine.observability.logStreams);
      // Each run asks the farm's mode as it starts (the farm comes after the scheduler it drives).
      const priority = () => (engine.farm?.background ? ('background' as const) : ('normal' as const));
      const execution = {
        config,
        store,
        actionCache,
        clock,
        log,
        sandbox,
        actionUser,
        buildRoot: actionUser?.user ? buildDir : undefined,
        priority,
        upstream: engine.upstream,
        localEnabled: () => engine.executionEnabled,
        peers: engine.peers,
        upstreamRunning: engine.upstreamRunning,
      };
      const decorators = { ...execution, orphanTimeoutMs: config.orphanTimeoutMs };
      engine.startScheduler(
        opts.executor ? decorateExecutor(placeExecutor(opts.executor, execution), decorators) : await createExecutor(execution),
      );
      engine.startFarm(opts);
      engine.registerServices();
      await engine.listen();
      // --- HTTP API (dashboard, metrics, live events): start here, after gRPC is up.
      await engine.observability.startHttp({
        grpcUrl: () => engine.grpcUrl,
        executing: () => engine.executionEnabled,
        upstream: () => engine.upstreamStatus(),
        peers: () => engine.peers?.status(),
        running: () => engine.scheduler?.runningActions().length ?? 0,
        setExecution: (enabled) => engine.setExecutionEnabled(enabled),
        platforms: executionPlatforms(config),
        farm: engine.farmControl(),
        ...httpAccessOptions(config, access, () => engine.grpcPort, {
          current: () => engine.liveSettings,
          update: (patch) => engine.updateSettings(patch),
          fixedAtStart: () =>
            (Object.entries({
              lan: 'lan',
              concurrency: 'concurrency',
              cacheSizeBytes: 'cacheSize',
              invocationHistory: 'invocationHistory',
              invocationHistoryDays: 'invocationHistoryDays',
            }) as [Exclude<keyof SavedSettings, 'mode'>, SettingName][])
              .filter(([key]) => savedSettingOverridden(config, key))
              .map(([, name]) => name),
        }),
      });
      // --- LAN discovery (mDNS): LAN mode only, once both ports are known.
      engine.advertisement = advertiseInLanMode(config, { grpcPort: engine.grpcPort, httpPort: engine.httpPort, tls: !!access.tls });
    } catch (err) {
      await engine.stop({ drainMs: 0 });
      throw err;
    }
    log(`kiln: data in ${config.dataDir}, cache budget ${config.cacheSizeBytes} bytes`);
    return engine;
  }

  get grpcPort(): number {
    return this.port;
  }

  get grpcUrl(): string {
    const host = this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host;
    return `${this.access.tls ? 'grpcs' : 'grpc'}://${host}:${this.port}`;
  }

  get httpPort(): number {
    return this.observability.httpPort;
  }

  get httpUrl(): string {
    return this.observability.httpUrl;
  }

  /** Bearer token for the HTTP API (also in {dataDir}/http-token). */
  get httpToken(): string {
    return this.observability.token;
  }

  get metrics() {
    return this.observability.metrics;
  }

  get history() {
    return this.observability.history;
  }

  get logs() {
    return this.observability.logs;
  }

  get logStreams() {
    return this.observability.logStreams;
  }

  get executionEnabled(): boolean {
    return this.executionOn;
  }

  setExecutionEnabled(enabled: boolean): void {
    if (enabled === this.executionOn) return;
    this.executionOn = enabled;
    this.scheduler?.setEnabled(this.acceptsExecute);
    this.events.emit({ type: 'execution.toggled', at: this.clock.now(), enabled });
    this.log(`kiln: execution ${enabled ? 'enabled' : 'disabled'}`);
  }

  /** Execute is accepted: execution is on here, or an upstream takes what this machine does not run. */
  get acceptsExecute(): boolean {
    return this.executionOn || runsUpstream(this.config) || this.runsOnPeers;
  }

  /** Actions may run on peer Kilns: there are some and `placement:` is not `local`. */
  private get runsOnPeers(): boolean {
    return this.peers !== undefined && this.config.placement !== 'local';
  }

  /** The scheduler's slots follow what the peers offer (called when that changes). */
  private resizeScheduler(): void {
    this.scheduler?.setConcurrency(this.schedulerSlots(this.farm?.slots ?? this.config.concurrency));
  }

  /** The upstream as /api/status reports it; undefined without one. */
  upstreamStatus(): UpstreamStatus | undefined {
    if (!this.upstream) return undefined;
    const remote = runsUpstream(this.config);
    return {
      ...this.upstream.status(),
      placement: this.config.placement,
      pendingUploads: this.upstreamQueue?.pending,
      slots: remote ? this.config.upstreamSlots : 0,
      running: this.upstreamRunning.count(),
    };
  }

  /** Scheduler slots: the local ones, plus the upstream's when actions may run there. */
  private schedulerSlots(local: number): number {
    return local + (runsUpstream(this.config) ? this.config.upstreamSlots : 0) + (this.runsOnPeers ? this.peers!.slots() : 0);
  }

  /** Worker slots and the cache budget as they are now (the configured slots: the farm's ceiling, not its choice). */
  get liveSettings(): LiveSettings {
    return {
      concurrency: this.config.concurrency,
      cacheSizeBytes: this.config.cacheSizeBytes,
      invocationHistory: this.config.invocationHistoryMax,
      invocationHistoryDays: this.config.invocationHistoryDays,
    };
  }

  /**
   * Changes worker slots and/or the cache budget without a restart, and saves them in
   * {dataDir}/settings.json for the next start (where flags and the config file still
   * win). Validates everything before changing anything; throws InvalidSettingError
   * (a bad value) or SettingsError (settings.json unreadable).
   */
  async updateSettings(patch: Partial<LiveSettings>): Promise<SettingsUpdate> {
    const save: SavedSettings = {};
    if (patch.concurrency !== undefined) save.concurrency = checkConcurrency(patch.concurrency);
    if (patch.cacheSizeBytes !== undefined) save.cacheSizeBytes = checkCacheBudget(patch.cacheSizeBytes);
    if (patch.invocationHistory !== undefined) save.invocationHistory = checkInvocationHistory(patch.invocationHistory);
    if (patch.invocationHistoryDays !== undefined) save.invocationHistoryDays = checkInvocationHistoryDays(patch.invocationHistoryDays);
    const result: SettingsUpdate = { appliedNow: [], appliedAtRestart: [] };
    if (Object.keys(save).length === 0) return result;
    saveSettings(this.config.dataDir, save);
    if (save.concurrency !== undefined) {
      // The farm decides the slots under the configured ceiling; without one, the scheduler takes it as it is.
      if (this.farm) this.farm.setConfiguredSlots(save.concurrency);
      else this.scheduler?.setConcurrency(this.schedulerSlots(save.concurrency));
      this.config.concurrency = save.concurrency;
      result.appliedNow.push('concurrency');
    }
    if (save.cacheSizeBytes !== undefined) {
      if (this.store.setBudget) {
        await this.store.setBudget(save.cacheSizeBytes);
        this.config.cacheSizeBytes = save.cacheSizeBytes;
        result.appliedNow.push('cacheSize');
      } else {
        result.appliedAtRestart.push('cacheSize');
      }
    }
    if (save.invocationHistory !== undefined || save.invocationHistoryDays !== undefined) {
      this.config.invocationHistoryMax = save.invocationHistory ?? this.config.invocationHistoryMax;
      this.config.invocationHistoryDays = save.invocationHistoryDays ?? this.config.invocationHistoryDays;
      this.observability.setInvocationBudget({ invocations: this.config.invocationHistoryMax, days: this.config.invocationHistoryDays });
      if (save.invocationHistory !== undefined) result.appliedNow.push('invocationHistory');
      if (save.invocationHistoryDays !== undefined) result.appliedNow.push('invocationHistoryDays');
    }
    if (save.concurrency !== undefined || result.appliedNow.includes('cacheSize')) {
      this.events.emit({ type: 'settings.changed', at: this.clock.now(), concurrency: this.config.concurrency, cacheSizeBytes: this.config.cacheSizeBytes });
      this.log(`kiln: now ${this.liveSettings.concurrency} worker slot(s), cache budget ${this.liveSettings.cacheSizeBytes} bytes`);
    }
    return result;
  }

  /** Changes the farm's mode at once and remembers it in settings.json (flags and the config file still win at start). */
  setMode(mode: FarmMode): void {
    if (!this.farm) return;
    saveSettings(this.config.dataDir, { mode });
    this.config.mode = mode;
    this.farm.setMode(mode);
  }

  /** Pauses the farm for `minutes`, or until resume() when undefined. */
  pause(minutes?: number): void {
    this.farm?.pause(minutes);
  }

  resume(): void {
    this.farm?.resume();
  }

  /** Signals a running action (STOP pauses, CONT resumes); what came of it, or undefined when it is not running. */
  signalAction(id: string, signal: ActionSignal, by = 'the dashboard'): string | undefined {
    return this.scheduler?.signal(id, signal, by);
  }

  /** Cancels a queued or running action for every caller on it; undefined when there is none of that id. */
  cancelAction(id: string, by = 'the dashboard'): string | undefined {
    return this.scheduler?.cancelAction(id, by);
  }

  /** Stops accepting calls, lets running ones finish for up to drainMs, then closes the stores. */
  stop(opts: { drainMs?: number } = {}): Promise<void> {
    this.stopping ??= this.shutdown(opts.drainMs ?? DEFAULT_DRAIN_MS);
    return this.stopping;
  }

  private registerServices(): void {
    const { store, actionCache, events, clock, config } = this;
    // Handlers run only for calls the access check accepted: only those say which invocation they belong to.
    const origins = (method: string, origin: RequestOrigin) => events.emit({ type: 'request.metadata', at: clock.now(), method, origin });
    const add = (def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) =>
      this.server.addService(def, this.inFlight.track(observeRequestOrigins(def, refuseMalformed(def, impl), origins)));

    add(CapabilitiesService, createCapabilitiesService({
      maxBatchTotalSizeBytes: config.maxBatchTotalSizeBytes,
      executionEnabled: () => this.acceptsExecute,
    }));
    add(ContentAddressableStorageService, createCasService({ store, maxBatchTotalSizeBytes: config.maxBatchTotalSizeBytes }));
    // Compressed uploads keep their compressed bytes in {dataDir}/zstd-uploads, so they resume after a restart.
    const compressedUploads = new CompressedUploads(store, COMPRESSED_UPLOAD_IDLE_MS, new DiskCompressedSpool(join(config.dataDir, 'zstd-uploads'), COMPRESSED_UPLOAD_IDLE_MS));
    add(ByteStreamService, createByteStreamService({ store, liveReaders: this.liveReaders, liveWriters: this.liveWriters, compressedUploads }));
    add(ActionCacheService, createActionCacheService({ store, actionCache, events, clock, ids: this.ids }));
    add(LogStreamService, this.observability.logStreams.service());
    // Build Event Service (bazel --bes_backend): folded into the invocations, under the same access policy.
    add(PublishBuildEventService, createBuildEventService({ sink: this.observability.invocations, clock, log: this.log }));
    // Remote Asset API: downloads for --experimental_remote_downloader, remembered in {dataDir}/assets.json.
    const fetcher = new AssetFetcher({
      store,
      index: new AssetIndex(join(config.dataDir, 'assets.json')),
      tmpDir: join(config.dataDir, 'downloads'),
      maxDownloadBytes: config.assetMaxDownloadBytes,
      defaultTimeoutMs: config.assetDefaultTimeoutMs,
      maxTimeoutMs: Math.max(config.assetDefaultTimeoutMs, ASSET_MAX_TIMEOUT_MS),
      refuseLoopback: isLanMode(config),
      events,
      clock,
    });
    add(FetchService, createFetchService({ fetcher, store }));
    add(PushService, createPushService({ fetcher, store }));
    if (this.scheduler) {
      const { scheduler } = this;
      add(ExecutionService, createExecutionService({
        scheduler,
        store,
        actionCache,
        defaultActionTimeoutMs: config.defaultActionTimeoutMs,
        maxActionTimeoutMs: config.maxActionTimeoutMs,
        executor: this.executor!,
        events,
        clock,
      }));
      add(OperationsService, createOperationsService({ scheduler, clock }));
    }
  }

  private startScheduler(executor: Executor): void {
    const { logs, logStreams } = this.observability;
    this.executor = executor;
    this.scheduler = new Scheduler({
      executor,
      concurrency: this.schedulerSlots(this.config.concurrency),
      queueSize: this.config.queueSize,
      operationRetentionMs: this.config.operationRetentionMs,
      enabled: this.acceptsExecute,
      logPathsFor: (id) => logs.pathsFor(id),
      streamNamesFor: (id, instance) => logStreams.streamNamesFor(id, instance),
      events: this.events,
      clock: this.clock,
      ids: this.ids,
      log: this.log,
    });
  }

  private startFarm(opts: EngineOptions): void {
    const scheduler = this.scheduler!;
    // The farm decides the local slots; the upstream's, when actions may go there, come on top.
    const slots: FarmSlots = {
      setConcurrency: (n) => scheduler.setConcurrency(this.schedulerSlots(n)),
      hold: (held) => scheduler.hold(held),
      runningActions: () => scheduler.runningActions(),
      signal: (id, signal, by) => scheduler.signal(id, signal, by),
    };
    this.farm = new Farm({
      slots,
      desk: opts.deskSignals ?? defaultDeskSignals(),
      mode: this.config.mode,
      configuredSlots: this.config.concurrency,
      cores: opts.cores ?? availableParallelism(),
      clock: this.clock,
      events: this.events,
      governor: opts.governor,
      log: this.log,
    });
    this.farm.start();
    const farm = this.farm;
    const executor = this.executor!;
    this.health = new HealthMonitor(
      this.events,
      {
        executionEnabled: () => this.executionOn,
        queue: () => ({ depth: scheduler.view().queueDepth, slots: farm.slots }),
        paused: () => farm.paused,
        readiness: () => executor.capacity(),
        cache: () => {
          const s = this.store.stats();
          return { bytes: s.bytes, budgetBytes: s.budgetBytes };
        },
        disk: () => {
          const host = this.observability.metrics.hostSample();
          return host ? { usedBytes: host.diskUsedBytes, totalBytes: host.diskTotalBytes } : null;
        },
        monotonic: () => performance.now(),
        // Asked for: in LAN mode under `auto` (`on` without bubblewrap never starts).
        sandbox: () => (this.sandboxStatus && isLanMode(this.config) ? this.sandboxStatus : undefined),
        upstream: () => this.upstreamStatus(),
        peers: () => this.peers?.status(),
      },
      this.clock,
      opts.healthTuning,
    );
    this.health.start();
  }

  /** The farm and health as the HTTP API sees them; undefined without a scheduler. */
  private farmControl(): FarmControl | undefined {
    const { farm, health } = this;
    if (!farm || !health) return undefined;
    return {
      status: (withHistory) => farm.status(withHistory),
      setMode: (mode) => this.setMode(mode),
      pause: (minutes) => this.pause(minutes),
      resume: () => this.resume(),
      signal: (id, signal) => this.signalAction(id, signal),
      cancel: (id) => this.cancelAction(id),
      health: () => health.check(),
      onHealthChange: (listener) => health.onChange(listener),
    };
  }

  private listen(): Promise<void> {
    const host = this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(`${host}:${this.config.port}`, grpcCredentials(this.access), (err, port) => {
        if (err) return reject(new Error(`cannot listen on ${host}:${this.config.port}: ${err.message}`));
        this.port = port;
        resolve();
      });
    });
  }

  private async shutdown(drainMs: number): Promise<void> {
    // Stop telling the LAN about us before we stop answering.
    await this.advertisement?.stop();
    // Nothing may change the slots while it drains. Actions a pause stopped stay stopped (and get
    // SIGTERM with a SIGCONT when the drain time is up), so a paused farm does not wake on Quit.
    this.health?.stop();
    this.farm?.stop();
    // Running actions get drainMs to finish, then are cancelled; their Execute streams end with them.
    const drained = this.scheduler?.stop(drainMs);
    // Real timers on purpose: an injected test clock must not be able to stall shutdown.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, drainMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    // Cancelled handlers still unwind (an upload closing its file); let them before closing stores.
    await drained;
    await this.executor?.close();
    await this.inFlight.idle(DEFAULT_DRAIN_MS);
    await this.observability?.stop();
    await Promise.allSettled([this.store.close(), this.actionCache.close()]);
    this.upstream?.close();
    this.peers?.close();
    this.dataDirLock?.release();
    this.log('kiln: stopped');
  }
}

/** How often Kiln checks that the upstream answers, so /api/status and placement stay current. */
const UPSTREAM_PROBE_MS = 10_000;

function startUpstream(config: KilnConfig, clock: Clock): UpstreamClient | undefined {
  if (!config.upstream) return undefined;
  return new UpstreamClient({
    url: config.upstream,
    instance: config.upstreamInstance,
    headers: config.upstreamHeaders,
    tlsCa: loadUpstreamCa(config.upstreamTlsCaFile),
    probeIntervalMs: UPSTREAM_PROBE_MS,
    clock,
  });
}

/** The blob's first `limit` bytes (0: all), or undefined when the store does not hold it. */
async function readBlobOrUndefined(store: BlobStore, digest: BlobDigest, limit: number): Promise<Readable | undefined> {
  try {
    return await store.read(digest, { limit });
  } catch (err) {
    if (err instanceof BlobNotFoundError) return undefined;
    throw err;
  }
}

/** Counts running handler invocations, so shutdown can wait for them to unwind. */
class InFlight {
  private count = 0;
  private waiters: (() => void)[] = [];

  track(impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
    const tracked: grpc.UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(impl)) {
      tracked[name] = ((...args: unknown[]) => {
        this.count++;
        let result: unknown;
        try {
          result = (handler as (...a: unknown[]) => unknown)(...args);
        } finally {
          Promise.resolve(result).finally(() => this.done());
        }
      }) as grpc.UntypedHandleCall;
    }
    return tracked;
  }

  /** Resolves when nothing runs, or after maxMs. */
  idle(maxMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, maxMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private done(): void {
    this.count--;
    if (this.count === 0) for (const w of this.waiters.splice(0)) w();
  }
}
