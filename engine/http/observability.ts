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
import { LogHub } from '../logs/log-hub';
import { MetricsCollector } from '../metrics/collector';
import { startHostSampler, systemSample } from '../metrics/host-sampler';
import { LogStreams } from '../reapi/logstream';
import type { LargestBlob, StoreStats } from '../store/blob-store';
import type { ApiStatus, LargestBlobs, UpstreamStatus } from '../common/api-types';
import { loadOrCreateToken } from './auth';
import { isLanHost } from '../common/loopback';
import type { AccessPolicy } from '../auth/access-policy';
import type { LanRoutes } from './lan-routes';
import { HttpApi, type HttpApiOptions } from './server';
import { packageRoot } from './static-files';

export interface ObservabilityOptions {
  config: KilnConfig;
  events: EventBus;
  storeStats: () => StoreStats;
  /** The store's largest blobs (BlobStore.largest), for GET /api/cache/largest; absent when it cannot list them. */
  largestBlobs?: (limit: number) => LargestBlob[];
  clock?: Clock;
}

export interface HttpStartOptions {
  grpcUrl: () => string;
  executing: () => boolean;
  /** The upstream's health, when there is one. */
  upstream?: () => UpstreamStatus | undefined;
  setExecution: (enabled: boolean) => void | Promise<void>;
  /** Tests: exercise the off-loopback rule from 127.0.0.1. */
  treatLoopbackAsRemote?: boolean;
  /** The engine's AccessPolicy, so HTTP accepts what gRPC accepts. */
  access?: AccessPolicy;
  /** HTTPS identity (LAN mode, or TLS asked for). */
  tls?: HttpApiOptions['tls'];
  lanRoutes?: LanRoutes;
}

const MAX_INSTANCE_NAMES = 64;

export class Observability {
  readonly logs: LogHub;
  readonly logStreams: LogStreams;
  readonly metrics: MetricsCollector;
  readonly history: ActionHistory;
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
      bus: events,
      metrics: this.metrics,
      history: this.history,
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
        upstream: s.upstream?.(),
      }),
    });
    await this.http.listen();
  }

  /** The store's answer as the API's JSON, with the store size it is a share of. */
  largestBlobs(limit: number): LargestBlobs {
    const items = (this.opts.largestBlobs?.(limit) ?? []).map(({ digest, size }) => ({ hash: digest.hash, size, fn: digest.fn }));
    return { items, storeBytes: this.opts.storeStats().bytes, at: (this.opts.clock ?? systemClock).now() };
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
