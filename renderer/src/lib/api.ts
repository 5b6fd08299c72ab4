// The engine's HTTP API, same origin. Reads are plain GETs; writes carry the
// bearer token. Errors come back as ApiFailure with the server's message.
import type {
  ActionDetail,
  ActionPage,
  ApiError,
  ApiStatus,
  AssetFetchList,
  ConnectInfo,
  EventTicket,
  ExecutionResponse,
  InvocationPage,
  InvocationSummary,
  LargestBlobs,
  LogStreamName,
  MetricsHistory,
  MetricsSnapshot,
  MetricsWindow,
  SettingsRequest,
  SettingsResponse,
  TokenCreated,
  TokenList,
  TokenRevoked,
} from '../../../engine/common/api-types';
import type { ActionControlResponse, ActionSignal, FarmMode, FarmStatus, HealthReport } from '../../../engine/common/farm-modes';
import { filterQuery, type ActionFilter } from './filters';

export class ApiFailure extends Error {
  constructor(
    readonly httpStatus: number,
    message: string,
    /** The request never got an answer (engine down, network). */
    readonly unreachable = false,
  ) {
    super(message);
  }
}

type Fetch = typeof fetch;

export class KilnApi {
  constructor(
    private readonly base = '',
    private readonly fetchImpl: Fetch = (...args) => fetch(...args),
    private readonly token: () => string | undefined = () => undefined,
  ) {}

  status(): Promise<ApiStatus> {
    return this.json('/api/status');
  }
  metrics(): Promise<MetricsSnapshot> {
    return this.json('/api/metrics');
  }
  /** The engine's recorded series: the last hour a point a second, or the last day a point a minute. */
  metricsHistory(window: MetricsWindow = 'hour'): Promise<MetricsHistory> {
    return this.json(`/api/metrics/history?window=${window}`);
  }
  actions(filter: ActionFilter, page: { cursor?: string; limit?: number } = {}): Promise<ActionPage> {
    return this.json(`/api/actions${filterQuery(filter, page)}`);
  }
  /** Bazel invocations, newest first. */
  invocations(limit = 100): Promise<InvocationPage> {
    return this.json(`/api/invocations?limit=${limit}`);
  }
  invocation(id: string): Promise<InvocationSummary> {
    return this.json(`/api/invocations/${encodeURIComponent(id)}`);
  }
  /** The newest `limit` actions of one invocation (its running ones included). */
  invocationActions(id: string, limit = 500): Promise<ActionPage> {
    return this.json(`/api/invocations/${encodeURIComponent(id)}/actions?limit=${limit}`);
  }
  action(id: string): Promise<ActionDetail> {
    return this.json(`/api/actions/${encodeURIComponent(id)}`);
  }
  async log(id: string, stream: LogStreamName): Promise<Uint8Array> {
    const res = await this.request(`/api/actions/${encodeURIComponent(id)}/${stream}`);
    return new Uint8Array(await res.arrayBuffer());
  }
  /** A CAS blob as text (a test.log named by build events), its first `limit` bytes. */
  async blobText(hash: string, size: number, limit = 1024 * 1024): Promise<string> {
    const res = await this.request(`/api/blobs/${encodeURIComponent(hash)}/${size}?limit=${limit}`);
    return res.text();
  }
  /** The largest CAS blobs, largest first (the engine reuses one listing for a couple of seconds). */
  largestBlobs(limit = 20): Promise<LargestBlobs> {
    return this.json(`/api/cache/largest?limit=${encodeURIComponent(String(limit))}`);
  }
  /** Recent Remote Asset fetches, newest first; one build's only with `invocation`. */
  assetFetches(invocation?: string): Promise<AssetFetchList> {
    return this.json(`/api/assets${invocation ? `?invocation=${encodeURIComponent(invocation)}` : ''}`);
  }
  setExecution(enabled: boolean): Promise<ExecutionResponse> {
    return this.json('/api/execution', { method: 'POST', body: JSON.stringify({ enabled }), headers: { 'content-type': 'application/json' } });
  }

  health(): Promise<HealthReport> {
    return this.json('/api/health');
  }
  /** Applies at once and is remembered; the answer is the farm with its slots history. */
  setMode(mode: FarmMode): Promise<FarmStatus> {
    return this.json('/api/mode', { method: 'PUT', body: JSON.stringify({ mode }), headers: { 'content-type': 'application/json' } });
  }
  /** Minutes, or undefined to pause until resumed. */
  pause(minutes?: number): Promise<FarmStatus> {
    return this.json('/api/pause', { method: 'POST', body: JSON.stringify(minutes === undefined ? {} : { minutes }), headers: { 'content-type': 'application/json' } });
  }
  resume(): Promise<FarmStatus> {
    return this.json('/api/pause', { method: 'DELETE' });
  }
  /** STOP pauses a running action, CONT resumes it; TERM, INT, KILL as a shell would send them. */
  signal(id: string, signal: ActionSignal): Promise<ActionControlResponse> {
    return this.json(`/api/actions/${encodeURIComponent(id)}/signal`, { method: 'POST', body: JSON.stringify({ signal }), headers: { 'content-type': 'application/json' } });
  }
  cancel(id: string): Promise<ActionControlResponse> {
    return this.json(`/api/actions/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
  }

  settings(): Promise<SettingsResponse> {
    return this.json('/api/settings');
  }
  setLan(lan: boolean): Promise<SettingsResponse> {
    return this.updateSettings({ lan });
  }
  /** Worker slots and the cache budget apply at once; the answer says what applied now and what waits for a restart. */
  updateSettings(body: SettingsRequest): Promise<SettingsResponse> {
    return this.json('/api/settings', { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  }
  tokens(): Promise<TokenList> {
    return this.json('/api/tokens');
  }
  createToken(name: string): Promise<TokenCreated> {
    return this.json('/api/tokens', { method: 'POST', body: JSON.stringify({ name }), headers: { 'content-type': 'application/json' } });
  }
  revokeToken(name: string): Promise<TokenRevoked> {
    return this.json(`/api/tokens/${encodeURIComponent(name)}`, { method: 'DELETE' });
  }
  /** The .bazelrc lines for this Kiln; `withToken` makes a fresh token and puts it in. */
  connect(withToken = false): Promise<ConnectInfo> {
    return this.json('/api/connect', withToken ? { method: 'POST' } : undefined);
  }
  /** A single-use ticket for the event stream (EventSource cannot send the token itself). */
  eventTicket(): Promise<EventTicket> {
    return this.json('/api/session', { method: 'POST' });
  }

  /** Where Kiln's CA certificate is served (public: a new machine needs it first). */
  get caUrl(): string {
    return `${this.base}/api/tls/ca.pem`;
  }

  eventsUrl(follow: readonly string[], ticket?: string): string {
    const params: string[] = [];
    if (follow.length) params.push(`follow=${follow.map(encodeURIComponent).join(',')}`);
    if (ticket) params.push(`ticket=${encodeURIComponent(ticket)}`);
    return `${this.base}/api/events${params.length ? `?${params.join('&')}` : ''}`;
  }

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    const res = await this.request(path, init);
    return (await res.json()) as T;
  }

  private async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const token = this.token();
    if (token) headers.set('authorization', `Bearer ${token}`);
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.base}${path}`, { ...init, headers, cache: 'no-store' });
    } catch (e) {
      throw new ApiFailure(0, 'The engine is not reachable.', true);
    }
    if (!res.ok) throw new ApiFailure(res.status, await errorMessage(res));
    return res;
  }
}

async function errorMessage(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as Partial<ApiError>;
    if (body.error?.message) return body.error.message;
  } catch {
    /* not JSON */
  }
  if (res.status === 401 || res.status === 403) return 'The engine refused the token.';
  return `The engine answered ${res.status} ${res.statusText}`.trim();
}
