// Live logs, metrics, history and the dashboard HTTP API as one unit, so the
// engine's composition root wires them with a few lines: create before the
// gRPC services (LogStream, the ByteStream live reader), start HTTP after.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock';
import type { KilnConfig } from '../config';
import type { EventBus } from '../events/event-bus';
import { ActionHistory } from '../history/action-history';
import { AssetFetchLog } from '../history/asset-fetch-log';
import { HistoryJournal } from '../invocations/history-journal';
import { InvocationIndex } from '../invocations/invocation-index';
import { LogHub } from '../logs/log-hub';
import { MetricsCollector } from '../metrics/collector';
import { SeriesRecorder } from '../metrics/series-recorder';
import { startHostSampler, systemSample } from '../metrics/host-sampler';
import { LogStreams } from '../reapi/logstream';
import type { LargestBlob, StoreStats } from '../store/blob-store';
import type { ApiExecutionPlatform, ApiSandbox, ApiStatus, LargestBlobs, PeerStatus, UpstreamStatus } from '../common/api-types';
import { loadOrCreateToken } from './auth';
import { isLanHost } from '../common/loopback';
import type { AccessPolicy } from '../auth/access-policy';
import type { LanRoutes } from './lan-routes';
import { FarmRoutes, type FarmControl } from './farm-routes';
import { HttpApi, type HttpApiOptions } from './server';
import type { BlobReader } from './blob-route';
import { packageRoot } from '../util/package-root';

export interface ObservabilityOptions {
  config: KilnConfig;
  events: EventBus;
  storeStats: () => StoreStats;
  /** The store's largest blobs (BlobStore.largest), for GET /api/cache/largest; absent when it cannot list them. */
  largestBlobs?: (limit: number) => LargestBlob[];
  /** CAS reads for GET /api/blobs/{hash}/{size}. */
  readBlob?: BlobReader;
  clock?: Clock;
  /** The sandbox decision made at start, shown in /api/status. */
  sandbox?: ApiSandbox;
  /** Progress and trouble lines (the history journal's). */
  log?: (line: string) => void;
}

export interface HttpStartOptions {
  grpcUrl: () => string;
  executing: () => boolean;
  /** The upstream's health, when there is one. */
  upstream?: () => UpstreamStatus | undefined;
  /** The peer Kilns, when there are any (--peers). */
  peers?: () => PeerStatus[] | undefined;
  /** Actions running on this machine now. */
  running?: () => number;
  setExecution: (enabled: boolean) => void | Promise<void>;
  /** Tests: exercise the off-loopback rule from 127.0.0.1. */
  treatLoopbackAsRemote?: boolean;
  /** The engine's AccessPolicy, so HTTP accepts what gRPC accepts. */
  access?: AccessPolicy;
  /** HTTPS identity (LAN mode, or TLS asked for). */
  tls?: HttpApiOptions['tls'];
  lanRoutes?: LanRoutes;
  /** The execution platforms for /api/status. */
  platforms?: ApiExecutionPlatform[];
  /** The polite farm and the health monitor (absent without a scheduler). */
  farm?: FarmControl;
}

const MAX_INSTANCE_NAMES = 64;
const DAY_MS = 24 * 60 * 60_000;

export class Observability {
  readonly logs: LogHub;
  readonly logStreams: LogStreams;
  readonly metrics: MetricsCollector;
  readonly history: ActionHistory;
  /** Recent Remote Asset fetches (GET /api/assets). */
  readonly assetFetches = new AssetFetchLog();
  /** The metrics over the last hour and day, for the charts. */
  readonly series: SeriesRecorder;
  /** Bazel invocations (RequestMetadata), kept with the history across restarts. */
  readonly invocations: InvocationIndex;
  private readonly journal: HistoryJournal;
  /** Bearer token for the HTTP API, kept in {dataDir}/http-token. */
  readonly token: string;
  private http?: HttpApi;
  private readonly startedAt: number;
  private readonly instances = new Set<string>();
  private readonly unsubscribe: (() => void)[] = [];

  constructor(private readonly opts: ObservabilityOptions) {
    const { config, events } = opts;
    const clock = opts.clock ?? systemClock;
    this.startedAt = clock.now();
    this.token = loadOrCreateToken(config.dataDir);
    this.logs = new LogHub({ dir: join(config.dataDir, 'logs'), clock });
    this.logStreams = new LogStreams(this.logs, { clock });
    this.history = new ActionHistory({}, clock);
    this.series = new SeriesRecorder(() => this.metrics.snapshot(), clock);
    this.invocations = new InvocationIndex({ maxInvocations: config.invocationHistoryMax, maxAgeMs: config.invocationHistoryDays * DAY_MS }, clock);
    // Before the history sees live events: what an earlier run saved comes first.
    this.journal = new HistoryJournal({ dataDir: config.dataDir, log: opts.log });
    this.journal.start(this.history, this.invocations);
    this.metrics = new MetricsCollector(events, {
      concurrency: config.concurrency,
      storeStats: opts.storeStats,
      host: startHostSampler(systemSample(config.dataDir)),
      executionEnabled: config.executionEnabled,
      clock,
    });
    this.unsubscribe.push(
      this.logs.attach(events),
      this.history.attach(events),
      this.assetFetches.attach(events),
      this.invocations.attach(events),
      events.on('action.queued', (e) => {
        if (this.instances.size < MAX_INSTANCE_NAMES) this.instances.add(e.instance);
      }),
    );
  }

  async startHttp(s: HttpStartOptions): Promise<void> {
    const { config, events } = this.opts;
    const version = packageVersion();
    this.http = new HttpApi({
      host: config.host,
      port: config.httpPort,
      token: this.token,
      requireTokenOnLoopback: config.requireTokenOnLoopback,
      treatLoopbackAsRemote: s.treatLoopbackAsRemote,
      access: s.access,
      tls: s.tls,
      lanRoutes: s.lanRoutes,
      farmRoutes: s.farm && new FarmRoutes(s.farm),
      onHealthChange: s.farm && ((listener) => s.farm!.onHealthChange(listener)),
      bus: events,
      metrics: this.metrics,
      metricsHistory: (window) => this.series.history(window),
      history: this.history,
      assetFetches: this.assetFetches,
      invocations: this.invocations,
      readBlob: this.opts.readBlob,
      logs: this.logs,
      setExecution: s.setExecution,
      largestBlobs: this.opts.largestBlobs ? (limit) => this.largestBlobs(limit) : undefined,
      status: (): ApiStatus => ({
        serving: true,
        executing: s.executing(),
        grpcUrl: s.grpcUrl(),
        httpUrl: this.httpUrl,
        version,
        uptimeMs: Date.now() - this.startedAt,
        host: config.host,
        lan: !isLanHost(config.host) ? undefined : { addresses: lanAddresses(config.host), tokenRequired: true },
        instanceNames: [...this.instances],
        tls: s.tls !== undefined,
        tokenRequiredOnLoopback: config.requireTokenOnLoopback,
        concurrency: config.concurrency,
        cacheBudgetBytes: config.cacheSizeBytes,
        platforms: s.platforms,
        sandbox: this.opts.sandbox,
        farm: s.farm?.status(true),
        health: s.farm?.health().problems,
        upstream: s.upstream?.(),
        running: s.running?.(),
        peers: s.peers?.(),
      }),
    });
    await this.http.listen();
    this.series.start();
  }

  /** The store's answer as the API's JSON, with the store size it is a share of. */
  largestBlobs(limit: number): LargestBlobs {
    const items = (this.opts.largestBlobs?.(limit) ?? []).map(({ digest, size }) => ({ hash: digest.hash, size, fn: digest.fn }));
    return { items, storeBytes: this.opts.storeStats().bytes, at: (this.opts.clock ?? systemClock).now() };
  }

  /** The invocation history budget, applied now: the index drops what is beyond it and the journal follows. */
  setInvocationBudget(budget: { invocations: number; days: number }): void {
    this.invocations.setLimits({ maxInvocations: budget.invocations, maxAgeMs: budget.days * DAY_MS });
    this.journal.trim();
  }

  get httpPort(): number {
    return this.http?.port ?? 0;
  }

  get httpUrl(): string {
    return this.http?.url ?? '';
  }

  async stop(): Promise<void> {
    await this.http?.close();
    this.unsubscribe.forEach((off) => off());
    this.journal.stop();
    this.series.stop();
    this.metrics.stop();
    this.logs.close();
  }
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function lanAddresses(host: string): string[] {
  if (host !== '0.0.0.0' && host !== '::') return [host];
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal && (host === '::' || a.family === 'IPv4'))
    .map((a) => a!.address);
}
