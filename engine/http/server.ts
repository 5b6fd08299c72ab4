// The dashboard HTTP API (node:http). JSON unless said otherwise; every error is
// a JSON ApiError with an actionable message, and no request can crash the process.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AccessPolicy } from '../auth/access-policy';
import type { AddressInfo } from 'node:net';
import { Readable, pipeline } from 'node:stream';
import type { EventBus } from '../events/event-bus';
import { InvalidCursorError, type ActionHistory } from '../history/action-history';
import type { AssetFetchLog } from '../history/asset-fetch-log';
import type { LogHub } from '../logs/log-hub';
import { InvalidInvocationCursorError, type InvocationIndex } from '../invocations/invocation-index';
import { ACTION_OUTCOMES, ACTION_STATES, type ActionOutcome, type ActionState, type LogStreamName } from '../common/action-vocabulary';
import type { HealthReport } from '../common/farm-modes';
import type { MetricsHistory, MetricsWindow } from '../common/metrics-history-types';
import type { ActionDetail, ApiError, AssetFetchList, ApiStatus, EventTicket, ExecutionResponse, LargestBlobs, MetricsSnapshot } from '../common/api-types';
import { checkAccess, checkAuth, EventTickets, type AuthPolicy, type AuthResult } from './auth';
import { CA_PATH, type LanRoutes } from './lan-routes';
import type { FarmRoutes } from './farm-routes';
import { HttpError, readBody } from './request';
import { serveBlob, type BlobReader } from './blob-route';
import { DEFAULT_FOLLOW_LIMITS, followLog, type FollowLimits } from './log-follower';
import { DEFAULT_SSE_LIMITS, SseConnection, type SseLimits } from './sse';
import { defaultRendererDir, securityHeaders, serveStatic } from './static-files';

export interface MetricsSource {
  snapshot(): MetricsSnapshot;
  prometheus(): string;
}

export interface HttpApiOptions extends AuthPolicy {
  host: string;
  /** 0 picks a free port. */
  port: number;
  bus: EventBus;
  metrics: MetricsSource;
  /** GET /api/metrics/history: the recorded series (engine/metrics/series-recorder.ts). */
  metricsHistory?: (window: MetricsWindow) => MetricsHistory;
  history: ActionHistory;
  /** Recent Remote Asset fetches (GET /api/assets); absent: the route answers an empty list. */
  assetFetches?: AssetFetchLog;
  /** Bazel invocations: GET /api/invocations…; absent, those routes answer 404. */
  invocations?: InvocationIndex;
  logs: LogHub;
  status(): ApiStatus;
  /** Flips the engine's execution switch. */
  setExecution(enabled: boolean): void | Promise<void>;
  /** Defaults to renderer/dist under the package root. */
  rendererDir?: string;
  metricsIntervalMs?: number;
  sse?: Partial<SseLimits>;
  follow?: Partial<FollowLimits>;
  /** When set, decides access instead of `token` alone (any stored token, mTLS), as gRPC does. */
  access?: AccessPolicy;
  /** Serve HTTPS with this identity; client certificates from `clientCas` are requested, not required. */
  tls?: { certPem: string; keyPem: string; clientCas: string[] };
  /** Tokens, CA download, connect lines, settings. */
  lanRoutes?: LanRoutes;
  /** Health, the farm's mode and pause, signals and cancel for one action. */
  farmRoutes?: FarmRoutes;
  /** Health reports as they change (the `health` SSE event). */
  onHealthChange?: (listener: (report: HealthReport) => void) => () => void;
  /** How long an unused /api/events ticket from POST /api/session stays good; default 30 s. */
  eventTicketTtlMs?: number;
  /** The `limit` largest CAS blobs (GET /api/cache/largest); absent when the store cannot list them. */
  largestBlobs?: (limit: number) => LargestBlobs;
  /** Reads CAS blobs for GET /api/blobs/{hash}/{size} (test logs named by build events); absent, that route answers 404. */
  readBlob?: BlobReader;
  /** How long one listing of the largest blobs is reused; default 2 s. */
  largestCacheMs?: number;
}

const MAX_FOLLOW = 16;
const DEFAULT_LARGEST = 20;
const MAX_LARGEST = 200;

export class HttpApi {
  private readonly server: Server;
  private readonly clients = new Set<SseConnection>();
  private readonly sseLimits: SseLimits;
  private readonly followLimits: FollowLimits;
  private readonly rendererDir: string;
  private readonly unsubscribe: (() => void)[] = [];
  private readonly tickets: EventTickets;
  private ticker?: NodeJS.Timeout;
  /** The top MAX_LARGEST, shared by every limit so pollers cannot make the store scan its index often. */
  private largestCache?: { list: LargestBlobs; until: number };

  constructor(private readonly opts: HttpApiOptions) {
    this.sseLimits = { ...DEFAULT_SSE_LIMITS, ...opts.sse };
    this.followLimits = { ...DEFAULT_FOLLOW_LIMITS, ...opts.follow };
    this.rendererDir = opts.rendererDir ?? defaultRendererDir();
    this.tickets = new EventTickets(opts.eventTicketTtlMs);
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((err) => this.fail(res, err));
    };
    const { tls } = opts;
    this.server = tls
      ? createHttpsServer({ cert: tls.certPem, key: tls.keyPem, ca: tls.clientCas, requestCert: true, rejectUnauthorized: false }, handler)
      : createServer(handler);
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  async listen(): Promise<{ port: number; url: string }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err) =>
        reject(new Error(`cannot serve the dashboard on ${this.opts.host}:${this.opts.port}: ${err.message}`)),
      );
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.removeAllListeners('error');
        resolve();
      });
    });
    this.startBroadcasts();
    return { port: this.port, url: this.url };
  }

  get port(): number {
    return (this.server.address() as AddressInfo | null)?.port ?? 0;
  }

  get url(): string {
    const h = this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host;
    return `${this.opts.tls ? 'https' : 'http'}://${h}:${this.port}/`;
  }

  async close(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.unsubscribe.forEach((off) => off());
    for (const c of this.clients) c.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** One snapshot per tick shared by every client; lifecycle events pushed as they happen. */
  private startBroadcasts(): void {
    this.ticker = setInterval(() => {
      if (this.clients.size === 0) return;
      const data = this.opts.metrics.snapshot();
      for (const c of this.clients) c.sendDroppable({ event: 'metrics', data });
    }, this.opts.metricsIntervalMs ?? 1_000);
    this.ticker.unref();
    this.unsubscribe.push(
      this.opts.history.onChange((change) => {
        for (const c of this.clients) c.send({ event: 'action', data: change });
      }),
      this.opts.bus.on('execution.toggled', (e) => {
        for (const c of this.clients) c.send({ event: 'execution', data: { executing: e.enabled, at: e.at } });
      }),
      this.opts.bus.on('farm.changed', (e) => {
        for (const c of this.clients) c.send({ event: 'farm', data: e.status });
      }),
    );
    if (this.opts.onHealthChange) {
      this.unsubscribe.push(
        this.opts.onHealthChange((report) => {
          for (const c of this.clients) c.send({ event: 'health', data: report });
        }),
      );
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://kiln.invalid');
    // The CA certificate is public: a new client needs it before it can trust anything else.
    const isPublic = this.opts.lanRoutes !== undefined && url.pathname === CA_PATH;
    // A ticket from POST /api/session stands in for the token on the event stream only.
    const ticket = url.pathname === '/api/events' ? url.searchParams.get('ticket') : null;
    const auth: AuthResult = isPublic
      ? { ok: true }
      : ticket !== null
        ? this.redeemTicket(req, ticket)
        : this.opts.access
          ? checkAccess(req, this.opts.access, this.opts.treatLoopbackAsRemote)
          : checkAuth(req, this.opts);
    if (!auth.ok) {
      this.opts.bus.emit({ type: 'auth.rejected', at: Date.now(), transport: 'http', reason: auth.reason });
      const where = this.opts.access
        ? "use the dashboard token (file http-token in Kiln's data directory) or an access token from `kiln token add NAME`"
        : "the dashboard token is in the file {data-dir}/http-token (http-token in Kiln's data folder); paste it in Settings, API token";
      throw new HttpError(401, `${auth.reason}; ${where}`, { 'WWW-Authenticate': 'Bearer realm="kiln"' });
    }
    let segments: string[];
    try {
      segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      throw new HttpError(400, `path "${url.pathname}" is not valid percent-encoding`);
    }
    const method = req.method ?? 'GET';
    const get = (allowed = ['GET', 'HEAD']) => {
      if (!allowed.includes(method)) throw new HttpError(405, `${method} is not allowed here`, { Allow: allowed.join(', ') });
    };

    if (segments[0] === 'metrics' && segments.length === 1) {
      get();
      return this.sendText(res, 200, this.opts.metrics.prometheus(), 'text/plain; version=0.0.4; charset=utf-8');
    }
    if (segments[0] !== 'api') {
      get();
      if (await serveStatic(req, res, this.rendererDir, url.pathname)) return;
      throw new HttpError(404, `nothing at ${url.pathname}`);
    }
    const lan = await this.opts.lanRoutes?.handle(req, segments);
    if (lan) {
      return 'json' in lan ? this.sendJson(res, lan.status, lan.json) : this.sendText(res, lan.status, lan.text, lan.type, lan.headers);
    }
    const farm = await this.opts.farmRoutes?.handle(req, segments);
    if (farm) return 'json' in farm ? this.sendJson(res, farm.status, farm.json) : this.sendText(res, farm.status, farm.text, farm.type, farm.headers);
    const [, resource, id, sub] = segments;
    switch (resource) {
      case 'assets': {
        if (segments.length !== 2) break;
        get();
        const invocation = url.searchParams.get('invocation') ?? undefined;
        return this.sendJson(res, 200, { items: this.opts.assetFetches?.list(invocation) ?? [] } satisfies AssetFetchList);
      }
      case 'status':
        if (segments.length !== 2) break;
        get();
        return this.sendJson(res, 200, this.opts.status());
      case 'metrics':
        if (segments.length === 3 && id === 'history' && this.opts.metricsHistory) {
          get();
          const window = url.searchParams.get('window') ?? 'hour';
          if (window !== 'hour' && window !== 'day') throw new HttpError(400, `window must be "hour" (a point a second) or "day" (a point a minute), not "${window}"`);
          return this.sendJson(res, 200, this.opts.metricsHistory(window));
        }
        if (segments.length !== 2) break;
        get();
        return this.sendJson(res, 200, this.opts.metrics.snapshot());
      case 'events':
        if (segments.length !== 2) break;
        get(['GET']);
        return this.events(res, url);
      case 'session':
        if (segments.length !== 2) break;
        get(['POST']);
        return this.sendJson(res, 201, this.tickets.issue() satisfies EventTicket);
      case 'execution':
        if (segments.length !== 2) break;
        get(['POST']);
        return this.execution(req, res);
      case 'cache':
        if (segments.length !== 3 || id !== 'largest') break;
        get();
        return this.largest(res, url);
      case 'blobs':
        if (segments.length !== 4 || !this.opts.readBlob) break;
        get();
        return serveBlob(res, this.opts.readBlob, id, sub, url);
      case 'invocations':
        get();
        if (segments.length === 2) return this.listInvocations(res, url);
        if (segments.length === 3) return this.invocation(res, id);
        if (segments.length === 4 && sub === 'actions') {
          this.invocation(undefined, id);
          return this.listActions(res, url, id);
        }
        break;
      case 'actions':
        get();
        if (segments.length === 2) return this.listActions(res, url);
        if (segments.length === 3) return this.action(res, id);
        if (segments.length === 4 && (sub === 'stdout' || sub === 'stderr')) return this.log(res, id, sub, url);
        break;
    }
    throw new HttpError(404, `no API endpoint at ${url.pathname}`);
  }

  private redeemTicket(req: IncomingMessage, ticket: string): AuthResult {
    if (req.method === 'GET' && this.tickets.redeem(ticket)) return { ok: true };
    return { ok: false, reason: 'the event ticket is unknown, used or expired (POST /api/session with the token for a new one)' };
  }

  private listInvocations(res: ServerResponse, url: URL): void {
    const index = this.invocationIndex();
    const limit = pageLimit(url.searchParams.get('limit'));
    try {
      this.sendJson(res, 200, index.list({ cursor: url.searchParams.get('cursor') || undefined, limit }));
    } catch (err) {
      if (err instanceof InvalidInvocationCursorError) throw new HttpError(400, `${err.message}; use nextCursor from a previous page`);
      throw err;
    }
  }

  /** Sends the invocation, or only checks it exists when `res` is undefined. */
  private invocation(res: ServerResponse | undefined, id: string): void {
    const inv = this.invocationIndex().get(id);
    if (!inv) throw new HttpError(404, `no invocation "${id}" (unknown, or older than the history keeps); GET /api/invocations lists them`);
    if (res) this.sendJson(res, 200, inv);
  }

  private invocationIndex(): InvocationIndex {
    if (!this.opts.invocations) throw new HttpError(404, 'this Kiln does not keep invocations');
    return this.opts.invocations;
  }

  private listActions(res: ServerResponse, url: URL, invocationFromPath?: string): void {
    const p = url.searchParams;
    const state = p.get('state') || undefined;
    const outcome = p.get('outcome') || undefined;
    if (state && !(ACTION_STATES as readonly string[]).includes(state)) {
      throw new HttpError(400, `state must be one of ${ACTION_STATES.join(', ')}, not "${state}"`);
    }
    if (outcome && !(ACTION_OUTCOMES as readonly string[]).includes(outcome)) {
      throw new HttpError(400, `outcome must be one of ${ACTION_OUTCOMES.join(', ')}, not "${outcome}"`);
    }
    const limit = pageLimit(p.get('limit'));
    try {
      const page = this.opts.history.list({
        invocation: invocationFromPath ?? (p.get('invocation') || undefined),
        state: state as ActionState | undefined,
        outcome: outcome as ActionOutcome | undefined,
        q: p.get('q') ?? undefined,
        cursor: p.get('cursor') || undefined,
        limit,
      });
      this.sendJson(res, 200, page);
    } catch (err) {
      if (err instanceof InvalidCursorError) throw new HttpError(400, `${err.message}; use nextCursor from a previous page`);
      throw err;
    }
  }

  private largest(res: ServerResponse, url: URL): void {
    const limitText = url.searchParams.get('limit');
    const limit = limitText === null ? DEFAULT_LARGEST : Number(limitText);
    if (limitText === '' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LARGEST) {
      throw new HttpError(400, `limit must be an integer from 1 to ${MAX_LARGEST}, not "${limitText}"`);
    }
    const source = this.opts.largestBlobs;
    if (!source) throw new HttpError(404, "this Kiln's blob store cannot list its largest blobs");
    const now = Date.now();
    if (!this.largestCache || now >= this.largestCache.until) {
      this.largestCache = { list: source(MAX_LARGEST), until: now + (this.opts.largestCacheMs ?? 2_000) };
    }
    const { list } = this.largestCache;
    this.sendJson(res, 200, { ...list, items: list.items.slice(0, limit) } satisfies LargestBlobs);
  }

  private action(res: ServerResponse, id: string): void {
    const detail = this.opts.history.get(id);
    if (!detail) throw new HttpError(404, `no action "${id}" in the history (unknown, or older than the history keeps)`);
    const has = this.opts.logs.has(id);
    const body: ActionDetail = { ...detail, logs: { stdout: has, stderr: has } };
    this.sendJson(res, 200, body);
  }

  /** The log as it is now, streamed from its file (`?tail=BYTES` for the end only). */
  private async log(res: ServerResponse, id: string, stream: LogStreamName, url: URL): Promise<void> {
    const tailText = url.searchParams.get('tail');
    const tail = tailText === null ? undefined : Number(tailText);
    if (tail !== undefined && (!Number.isSafeInteger(tail) || tail < 0)) {
      throw new HttpError(400, `tail must be a non-negative number of bytes, not "${tailText}"`);
    }
    const info = await this.opts.logs.info(id, stream);
    if (!info) throw new HttpError(404, `no ${stream} for action "${id}" (unknown, or deleted by log retention)`);
    const offset = tail === undefined ? 0 : Math.max(0, info.size - tail);
    const length = info.size - offset;
    securityHeaders(res);
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': length, 'Cache-Control': 'no-store' });
    if (res.req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    const chunks = this.opts.logs.read(id, stream, { offset, limit: length, follow: false, signal: abort.signal });
    const body = Readable.from((async function* () {
      for await (const c of chunks) yield c.data;
    })());
    pipeline(body, res, () => undefined);
  }

  private events(res: ServerResponse, url: URL): void {
    const follow = (url.searchParams.get('follow') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (follow.length > MAX_FOLLOW) throw new HttpError(400, `follow at most ${MAX_FOLLOW} actions at once, not ${follow.length}`);
    const conn = new SseConnection(res, this.sseLimits);
    this.clients.add(conn);
    conn.signal.addEventListener('abort', () => this.clients.delete(conn), { once: true });
    conn.sendDroppable({ event: 'metrics', data: this.opts.metrics.snapshot() });
    for (const id of follow) {
      for (const stream of ['stdout', 'stderr'] as const) void followLog(this.opts.logs, conn, id, stream, this.followLimits);
    }
  }

  private async execution(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readBody(req);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'body must be JSON like {"enabled": true}');
    }
    const enabled = (body as { enabled?: unknown } | null)?.enabled;
    if (typeof enabled !== 'boolean') throw new HttpError(400, 'body must have a boolean "enabled", like {"enabled": false}');
    await this.opts.setExecution(enabled);
    const reply: ExecutionResponse = { executing: enabled };
    this.sendJson(res, 200, reply);
  }

  private sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.sendText(res, status, JSON.stringify(body), 'application/json; charset=utf-8', headers);
  }

  private sendText(res: ServerResponse, status: number, text: string, type: string, headers: Record<string, string> = {}): void {
    securityHeaders(res);
    res.writeHead(status, { ...headers, 'Content-Type': type, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(res.req.method === 'HEAD' ? undefined : text);
  }

  private fail(res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status = err instanceof HttpError ? err.status : 500;
    if (!(err instanceof HttpError)) console.error('kiln: http handler failed:', err);
    const message = err instanceof HttpError ? err.message : `internal error: ${err instanceof Error ? err.message : String(err)}`;
    const body: ApiError = { error: { code: status, status: STATUS_NAMES[status] ?? 'ERROR', message } };
    try {
      this.sendJson(res, status, body, err instanceof HttpError ? err.headers : {});
    } catch {
      res.destroy();
    }
  }
}

/** ?limit= of a paged list: 1 to 500, or undefined for the default. */
function pageLimit(text: string | null): number | undefined {
  if (text === null) return undefined;
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new HttpError(400, `limit must be an integer from 1 to 500, not "${text}"`);
  return limit;
}

const STATUS_NAMES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHENTICATED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'ALREADY_EXISTS',
  413: 'PAYLOAD_TOO_LARGE',
  500: 'INTERNAL',
};
