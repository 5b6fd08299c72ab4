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
  OperationsService,
} from './grpc/services';
import { createActionCacheService } from './reapi/action-cache';
import { createByteStreamService, type LiveResourceReader, type LiveResourceWriter } from './reapi/bytestream';
import { createCapabilitiesService } from './reapi/capabilities';
import { createCasService } from './reapi/cas';
import { DiskActionCacheStore, type ActionCacheStore } from './store/action-cache-store';
import type { BlobStore } from './store/blob-store';
import { DiskBlobStore } from './store/disk-store';
import { ObservedBlobStore } from './store/observed-store';
import { checkCacheBudget, checkConcurrency, type SettingName } from './common/settings-limits';
import { Observability } from './http/observability';
import { loadOrCreateToken } from './http/auth';
import { prepareAccess, type Access } from './lan/access';
import type { Advertisement } from './lan/discovery';
import { advertiseInLanMode, grpcCredentials, grpcInterceptor } from './lan/wiring';
import { httpAccessOptions } from './http/lan-access';
import { createExecutionService } from './reapi/execution';
import { createOperationsService } from './reapi/operations';
import { Scheduler } from './scheduler/scheduler';
import { saveSettings, type SavedSettings } from './settings';
import { lockDataDir, type DataDirLock } from './util/data-dir-lock';
import type { Executor } from './execution/executor';
import { createExecutor, decorateExecutor, placeExecutor, runsUpstream } from './executor-factory';
import { loadUpstreamCa, UpstreamClient } from './upstream/upstream-client';
import { ReadThroughActionCache, ReadThroughBlobStore } from './upstream/read-through-store';
import { WriteThroughQueue } from './upstream/write-through-queue';
import type { UpstreamStatus } from './common/api-types';

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
}

/** Settings the dashboard can change while Kiln runs. */
export interface LiveSettings {
  concurrency: number;
  cacheSizeBytes: number;
}

export interface SettingsUpdate {
  /** Took effect at once (and were saved). */
  appliedNow: ('concurrency' | 'cacheSize')[];
  /** Saved, but this Kiln cannot change them live (a store without a budget to change). */
  appliedAtRestart: ('concurrency' | 'cacheSize')[];
}

/** Room above max_batch_total_size_bytes so our own check, not the transport, answers oversized batches. */
const MESSAGE_LIMIT_HEADROOM = 64 * 1024 * 1024;
const DEFAULT_DRAIN_MS = 5_000;

export class Engine {
  /** ByteStream asks these before parsing blob names; components add theirs (live logs) at start. */
  readonly liveReaders: LiveResourceReader[] = [];
  /** ByteStream asks these before parsing upload names (log streams written by clients). */
  readonly liveWriters: LiveResourceWriter[] = [];
  /** Live logs, metrics, history and the dashboard HTTP API (engine/http/observability.ts). */
  observability!: Observability;
  /** Queue, worker slots and operations; undefined when the engine has no executor. */
  scheduler?: Scheduler;
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
      // Every call passes the access policy before any service sees it.
      interceptors: [grpcInterceptor(access, events, () => clock.now())],
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

    // --- Storage -------------------------------------------------------------
    const events = new EventBus();
    const rawStore =
      opts.blobStore ??
      (await DiskBlobStore.open({ dir: join(config.dataDir, 'cas'), budgetBytes: config.cacheSizeBytes, events, clock }));
    let actionCache: ActionCacheStore;
    let upstreamQueue: WriteThroughQueue | undefined;
    try {
      actionCache = opts.actionCache ?? (await DiskActionCacheStore.open({ dir: join(config.dataDir, 'ac'), clock }));
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
    const store = new ObservedBlobStore(cas, events, clock);
    const engine = new Engine(config, events, store, actionCache, clock, opts.ids ?? uuidIds, log, access);
    engine.dataDirLock = lock;
    engine.upstream = upstream;
    engine.upstreamQueue = upstreamQueue;

    try {
      // --- Scheduler, workers, live logs: create here, before services that use them.
      engine.observability = new Observability({
        config,
        events,
        storeStats: () => store.stats(),
        largestBlobs: store.largest ? (limit) => store.largest!(limit) : undefined,
        clock,
      });
      engine.liveReaders.push(engine.observability.logStreams);
      engine.liveWriters.push(engine.observability.logStreams);
      const execution = { config, store, actionCache, clock, log, upstream: engine.upstream, localEnabled: () => engine.executionEnabled };
      const decorators = { ...execution, orphanTimeoutMs: config.orphanTimeoutMs };
      engine.startScheduler(
        opts.executor ? decorateExecutor(placeExecutor(opts.executor, execution), decorators) : await createExecutor(execution),
      );
      engine.registerServices();
      await engine.listen();
      // --- HTTP API (dashboard, metrics, live events): start here, after gRPC is up.
      await engine.observability.startHttp({
        grpcUrl: () => engine.grpcUrl,
        executing: () => engine.executionEnabled,
        upstream: () => engine.upstreamStatus(),
        setExecution: (enabled) => engine.setExecutionEnabled(enabled),
        ...httpAccessOptions(config, access, () => engine.grpcPort, {
          current: () => engine.liveSettings,
          update: (patch) => engine.updateSettings(patch),
          fixedAtStart: () =>
            (Object.entries({ lan: 'lan', concurrency: 'concurrency', cacheSizeBytes: 'cacheSize' }) as [keyof SavedSettings, SettingName][])
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
    return this.executionOn || runsUpstream(this.config);
  }

  /** The upstream as /api/status reports it; undefined without one. */
  upstreamStatus(): UpstreamStatus | undefined {
    if (!this.upstream) return undefined;
    return { ...this.upstream.status(), placement: this.config.placement, pendingUploads: this.upstreamQueue?.pending };
  }

  /** Scheduler slots: the local ones, plus the upstream's when actions may run there. */
  private schedulerSlots(local: number): number {
    return local + (runsUpstream(this.config) ? this.config.upstreamSlots : 0);
  }

  /** Worker slots and the cache budget as they are now. */
  get liveSettings(): LiveSettings {
    return { concurrency: this.config.concurrency, cacheSizeBytes: this.config.cacheSizeBytes };
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
    const result: SettingsUpdate = { appliedNow: [], appliedAtRestart: [] };
    if (Object.keys(save).length === 0) return result;
    saveSettings(this.config.dataDir, save);
    if (save.concurrency !== undefined) {
      this.scheduler?.setConcurrency(this.schedulerSlots(save.concurrency));
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
    if (result.appliedNow.length) {
      this.events.emit({ type: 'settings.changed', at: this.clock.now(), ...this.liveSettings });
      this.log(`kiln: now ${this.liveSettings.concurrency} worker slot(s), cache budget ${this.liveSettings.cacheSizeBytes} bytes`);
    }
    return result;
  }

  /** Stops accepting calls, lets running ones finish for up to drainMs, then closes the stores. */
  stop(opts: { drainMs?: number } = {}): Promise<void> {
    this.stopping ??= this.shutdown(opts.drainMs ?? DEFAULT_DRAIN_MS);
    return this.stopping;
  }

  private registerServices(): void {
    const { store, actionCache, events, clock, config } = this;
    const add = (def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) =>
      this.server.addService(def, this.inFlight.track(impl));

    add(CapabilitiesService, createCapabilitiesService({
      maxBatchTotalSizeBytes: config.maxBatchTotalSizeBytes,
      executionEnabled: () => this.acceptsExecute,
    }));
    add(ContentAddressableStorageService, createCasService({ store, maxBatchTotalSizeBytes: config.maxBatchTotalSizeBytes }));
    add(ByteStreamService, createByteStreamService({ store, liveReaders: this.liveReaders, liveWriters: this.liveWriters }));
    add(ActionCacheService, createActionCacheService({ store, actionCache, events, clock }));
    add(LogStreamService, this.observability.logStreams.service());
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
