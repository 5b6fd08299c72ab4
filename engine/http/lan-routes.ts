// The LAN endpoints of the HTTP API: Kiln's CA, access tokens, the .bazelrc
// lines for this machine, and the settings (the saved LAN switch; worker slots
// and the cache budget, which apply at once). The server authenticates
// before calling in (only the CA is public); this module only answers.
import type { IncomingMessage } from 'node:http';
import { TokenError, type TokenStore } from '../auth/tokens';
import { isLoopbackAddress } from '../common/loopback';
import { tokenHeaderFlag } from '../common/bazel-flags';
import { advertisedHost, bazelrcLines, connectEndpoint, connectTokenName } from '../lan/connect';
import { ConfigError, parseSize } from '../config-load';
import { checkCacheBudget, checkConcurrency, checkInvocationHistory, checkInvocationHistoryDays, InvalidSettingError, type SettingName } from '../common/settings-limits';
import { readSettings, saveSettings, SettingsError } from '../settings';
import type { ConnectInfo, SettingsResponse, TokenCreated, TokenList, TokenRevoked } from '../common/api-types';
import { HttpError, readJsonObject } from './request';

export interface LanRoutesOptions {
  dataDir: string;
  tokens: TokenStore;
  /** The listen address (a wildcard means "every interface"). */
  host: string;
  grpcPort: () => number;
  lanActive: boolean;
  /** Present when TLS is on; caPem/caPath absent when the server certificate is the user's own. */
  tls?: { caPem?: string; caPath?: string };
  /** The running engine's live settings; without it only `lan` can be set. */
  engineSettings?: EngineSettingsHooks;
}

/** What the engine offers for settings that apply without a restart (Engine.updateSettings). */
export interface EngineSettingsHooks {
  current(): LiveValues;
  /** Validates, saves and applies; throws InvalidSettingError for a bad value. */
  update(patch: Partial<LiveValues>): Promise<{ appliedNow: SettingName[]; appliedAtRestart: SettingName[] }>;
  /** Settings a flag or the config file sets at start. */
  fixedAtStart(): SettingName[];
}

/** The settings a running engine can change, as numbers. */
export interface LiveValues {
  concurrency: number;
  cacheSizeBytes: number;
  invocationHistory: number;
  invocationHistoryDays: number;
}

export type RouteReply = { status: number; json: unknown } | { status: number; text: string; type: string; headers?: Record<string, string> };

export const CA_PATH = '/api/tls/ca.pem';

export class LanRoutes {
  constructor(private readonly opts: LanRoutesOptions) {}

  /** Undefined when the path is not one of these routes. */
  async handle(req: IncomingMessage, segments: string[]): Promise<RouteReply | undefined> {
    const method = req.method ?? 'GET';
    const [, resource, id, ...more] = segments;
    if (more.length > 0) return undefined;
    switch (resource) {
      case 'tls':
        if (id !== 'ca.pem') return undefined;
        allow(method, ['GET', 'HEAD']);
        return this.ca();
      case 'tokens':
        if (id === undefined) {
          allow(method, ['GET', 'HEAD', 'POST']);
          return method === 'POST' ? this.createToken(req) : { status: 200, json: { tokens: this.opts.tokens.list() } satisfies TokenList };
        }
        allow(method, ['DELETE']);
        return this.revoke(id);
      case 'connect':
        if (id !== undefined) return undefined;
        allow(method, ['GET', 'HEAD', 'POST']);
        return { status: method === 'POST' ? 201 : 200, json: this.connect(req, method === 'POST') };
      case 'settings':
        if (id !== undefined) return undefined;
        allow(method, ['GET', 'HEAD', 'PUT']);
        return { status: 200, json: method === 'PUT' ? await this.putSettings(req) : this.settings() };
    }
    return undefined;
  }

  private ca(): RouteReply {
    const pem = this.opts.tls?.caPem;
    if (!pem) {
      throw new HttpError(404, this.opts.tls ? 'this Kiln serves a certificate of your own (tls-cert), not one from its CA' : 'TLS is off on this Kiln, so there is no CA to trust');
    }
    return {
      status: 200,
      text: pem,
      type: 'application/x-pem-file',
      headers: { 'Content-Disposition': 'attachment; filename="kiln-ca.pem"' },
    };
  }

  private async createToken(req: IncomingMessage): Promise<RouteReply> {
    const body = await readJsonObject(req, '{"name": "alice"}');
    if (typeof body.name !== 'string') throw new HttpError(400, 'body must have a string "name", like {"name": "alice"}');
    return { status: 201, json: this.addToken(body.name) };
  }

  private addToken(name: string): TokenCreated {
    let token: string;
    try {
      token = this.opts.tokens.add(name);
    } catch (err) {
      if (err instanceof TokenError) throw new HttpError(/exists already/.test(err.message) ? 409 : 400, err.message);
      throw err;
    }
    const createdAt = this.opts.tokens.list().find((t) => t.name === name)?.createdAt ?? new Date().toISOString();
    return { name, createdAt, token, bazelFlag: tokenHeaderFlag(token) };
  }

  private revoke(name: string): RouteReply {
    if (!this.opts.tokens.revoke(name)) {
      throw new HttpError(404, `no token named "${name}"; GET /api/tokens lists them`);
    }
    return { status: 200, json: { revoked: name } satisfies TokenRevoked };
  }

  private connect(req: IncomingMessage, makeToken: boolean): ConnectInfo {
    const host = this.hostFor(req);
    const tls = this.opts.tls;
    const token = makeToken ? this.addToken(connectTokenName((n) => this.opts.tokens.list().some((t) => t.name === n))) : undefined;
    return {
      endpoint: connectEndpoint(host, this.opts.grpcPort(), tls !== undefined),
      tls: tls !== undefined,
      caUrl: tls?.caPem ? '/api/tls/ca.pem' : undefined,
      caPath: tls?.caPath,
      bazelrc: bazelrcLines({ host, grpcPort: this.opts.grpcPort(), tls: tls !== undefined, caPath: tls?.caPath, token: token?.token }),
      token,
    };
  }

  /** On a wildcard listener, the name the browser reached us by is one other machines can use too. */
  private hostFor(req: IncomingMessage): string {
    const { host } = this.opts;
    if (host !== '0.0.0.0' && host !== '::') return host;
    const reached = hostnameOf(req.headers.host);
    return reached && !isLoopbackAddress(reached) ? reached : advertisedHost(host);
  }

  private settings(update?: { appliedNow: SettingName[]; appliedAtRestart: SettingName[]; lanChanged: boolean }): SettingsResponse {
    const saved = this.saved();
    const lan = saved.lan ?? false;
    const live = this.opts.engineSettings?.current();
    const fixed = this.opts.engineSettings?.fixedAtStart() ?? [];
    const lanPending = lan !== this.opts.lanActive;
    // A saved value that is not running yet (and no flag will override) waits for a restart.
    const pending = (name: SettingName, savedValue: number | undefined, running: number | undefined) =>
      savedValue !== undefined && running !== undefined && savedValue !== running && !fixed.includes(name);
    const restartRequired =
      lanPending ||
      pending('concurrency', saved.concurrency, live?.concurrency) ||
      pending('cacheSize', saved.cacheSizeBytes, live?.cacheSizeBytes) ||
      pending('invocationHistory', saved.invocationHistory, live?.invocationHistory) ||
      pending('invocationHistoryDays', saved.invocationHistoryDays, live?.invocationHistoryDays);
    const lanMessage = lanPending
      ? `LAN mode turns ${lan ? 'on' : 'off'} when Kiln restarts (a --host flag or config file still wins)`
      : `LAN mode is ${lan ? 'on' : 'off'}`;
    const response: SettingsResponse = { lan, lanActive: this.opts.lanActive, restartRequired, message: lanMessage };
    if (live) {
      Object.assign(response, {
        concurrency: live.concurrency,
        cacheSizeBytes: live.cacheSizeBytes,
        invocationHistory: live.invocationHistory,
        invocationHistoryDays: live.invocationHistoryDays,
        saved,
        fixedAtStart: fixed,
      });
    }
    if (update) {
      response.appliedNow = update.appliedNow;
      response.appliedAtRestart = [...update.appliedAtRestart, ...(update.lanChanged && lanPending ? (['lan'] as const) : [])];
      response.message = updateMessage(update, live, saved.cacheSizeBytes, fixed, update.lanChanged ? lanMessage : undefined);
    }
    return response;
  }

  private async putSettings(req: IncomingMessage): Promise<SettingsResponse> {
    const live = this.opts.engineSettings;
    const names = live ? ['lan', 'concurrency', 'cacheSize', 'invocationHistory', 'invocationHistoryDays'] : ['lan'];
    const body = await readJsonObject(req, live ? '{"concurrency": 8, "cacheSize": "20GiB", "invocationHistory": 2000, "invocationHistoryDays": 7}' : '{"lan": true}');
    const unknown = Object.keys(body).filter((k) => !names.includes(k));
    if (unknown.length) throw new HttpError(400, `unknown setting "${unknown[0]}"; the settings are: ${names.join(', ')}`);
    if (Object.keys(body).length === 0) throw new HttpError(400, `the body sets nothing; give any of: ${names.join(', ')}`);
    if (body.lan !== undefined && typeof body.lan !== 'boolean') throw new HttpError(400, 'body must have a boolean "lan", like {"lan": true}');
    // Every value is checked before anything is saved or applied.
    const patch: Partial<LiveValues> = {};
    try {
      if (body.concurrency !== undefined) patch.concurrency = checkConcurrency(body.concurrency);
      if (body.cacheSize !== undefined) patch.cacheSizeBytes = checkCacheBudget(parseCacheSize(body.cacheSize));
      if (body.invocationHistory !== undefined) patch.invocationHistory = checkInvocationHistory(body.invocationHistory);
      if (body.invocationHistoryDays !== undefined) patch.invocationHistoryDays = checkInvocationHistoryDays(body.invocationHistoryDays);
    } catch (err) {
      if (err instanceof InvalidSettingError) throw new HttpError(400, err.message);
      throw err;
    }
    let update = { appliedNow: [] as SettingName[], appliedAtRestart: [] as SettingName[] };
    try {
      if (live && Object.keys(patch).length) update = await live.update(patch);
      if (typeof body.lan === 'boolean') saveSettings(this.opts.dataDir, { lan: body.lan });
    } catch (err) {
      if (err instanceof InvalidSettingError) throw new HttpError(400, err.message);
      if (err instanceof SettingsError) throw new HttpError(500, err.message);
      throw err;
    }
    return this.settings({ ...update, lanChanged: typeof body.lan === 'boolean' });
  }

  private saved() {
    try {
      return readSettings(this.opts.dataDir);
    } catch (err) {
      if (err instanceof SettingsError) throw new HttpError(500, err.message);
      throw err;
    }
  }
}

/** A byte count or a size like "20GiB" (engine/config-load.ts parseSize). */
function parseCacheSize(value: unknown): number {
  if (typeof value !== 'number' && typeof value !== 'string') {
    throw new InvalidSettingError(`"cacheSize" must be bytes or a size like "20GiB", not ${JSON.stringify(value)}`);
  }
  try {
    return parseSize(value);
  } catch (err) {
    if (err instanceof ConfigError) throw new InvalidSettingError(`cacheSize: ${err.message}`);
    throw err;
  }
}

/** The start-up flag of each setting, where its name differs. */
const FLAG_NAMES: Partial<Record<SettingName, string>> = {
  cacheSize: 'cache-size',
  invocationHistory: 'invocation-history',
  invocationHistoryDays: 'invocation-history-days',
};

/** One sentence per change: what runs now, what waits for a restart, what a flag will override. */
function updateMessage(
  update: { appliedNow: SettingName[]; appliedAtRestart: SettingName[] },
  live: LiveValues | undefined,
  savedBudget: number | undefined,
  fixed: SettingName[],
  lanMessage: string | undefined,
): string {
  const parts: string[] = [];
  const what = (name: SettingName) => {
    if (name === 'concurrency') return `${live?.concurrency} worker slot${live?.concurrency === 1 ? '' : 's'}`;
    if (name === 'invocationHistory') return `a history of ${live?.invocationHistory} invocations`;
    if (name === 'invocationHistoryDays') return `invocations kept for ${live?.invocationHistoryDays} day${live?.invocationHistoryDays === 1 ? '' : 's'}`;
    return `a cache budget of ${sizeText(name === 'cacheSize' && update.appliedNow.includes(name) ? live?.cacheSizeBytes : savedBudget)}`;
  };
  if (update.appliedNow.length) parts.push(`Applied now and saved: ${update.appliedNow.map(what).join(', ')}.`);
  if (update.appliedAtRestart.length) parts.push(`Saved for the next start: ${update.appliedAtRestart.map(what).join(', ')}.`);
  const overridden = [...update.appliedNow, ...update.appliedAtRestart].filter((n) => fixed.includes(n));
  if (overridden.length) {
    parts.push(`A flag or the config file sets ${overridden.map((n) => FLAG_NAMES[n] ?? n).join(' and ')} when Kiln starts, and wins over the saved value.`);
  }
  if (lanMessage) parts.push(`${lanMessage}.`);
  return parts.join(' ');
}

function sizeText(bytes: number | undefined): string {
  if (bytes === undefined) return 'unknown size';
  for (const [unit, size] of [['TiB', 1024 ** 4], ['GiB', 1024 ** 3], ['MiB', 1024 ** 2]] as const) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(2))} ${unit}`;
  }
  return `${bytes} bytes`;
}

function allow(method: string, allowed: string[]): void {
  if (!allowed.includes(method)) throw new HttpError(405, `${method} is not allowed here`, { Allow: allowed.join(', ') });
}

function hostnameOf(hostHeader: string | undefined): string | undefined {
  if (!hostHeader) return undefined;
  try {
    return new URL(`http://${hostHeader}`).hostname.replace(/^\[|\]$/g, '') || undefined;
  } catch {
    return undefined;
  }
}
