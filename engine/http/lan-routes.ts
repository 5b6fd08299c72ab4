// The LAN endpoints of the HTTP API: Kiln's CA, access tokens, the .bazelrc
// lines for this machine, and the saved LAN switch. The server authenticates
// before calling in (only the CA is public); this module only answers.
import type { IncomingMessage } from 'node:http';
import { TokenError, type TokenStore } from '../auth/tokens';
import { isLoopbackAddress } from '../auth/peer';
import { advertisedHost, bazelrcLines, connectEndpoint, connectTokenName } from '../lan/connect';
import { readSettings, saveSettings, SettingsError } from '../settings';
import type { ConnectInfo, SettingsResponse, TokenCreated, TokenList, TokenRevoked } from './api-types';
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
    return { name, createdAt, token, bazelFlag: `--remote_header=authorization=Bearer ${token}` };
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

  private settings(): SettingsResponse {
    const lan = this.saved().lan ?? false;
    const restartRequired = lan !== this.opts.lanActive;
    return {
      lan,
      lanActive: this.opts.lanActive,
      restartRequired,
      message: restartRequired
        ? `LAN mode turns ${lan ? 'on' : 'off'} when Kiln restarts (a --host flag or config file still wins)`
        : `LAN mode is ${lan ? 'on' : 'off'}`,
    };
  }

  private async putSettings(req: IncomingMessage): Promise<SettingsResponse> {
    const body = await readJsonObject(req, '{"lan": true}');
    const unknown = Object.keys(body).filter((k) => k !== 'lan');
    if (unknown.length) throw new HttpError(400, `unknown setting "${unknown[0]}"; the settings are: lan`);
    if (typeof body.lan !== 'boolean') throw new HttpError(400, 'body must have a boolean "lan", like {"lan": true}');
    try {
      saveSettings(this.opts.dataDir, { lan: body.lan });
    } catch (err) {
      if (err instanceof SettingsError) throw new HttpError(500, err.message);
      throw err;
    }
    return this.settings();
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
