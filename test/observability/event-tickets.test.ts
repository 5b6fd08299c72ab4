// Live events for a browser that needs a token: EventSource cannot send an
// Authorization header, so POST /api/session (with the token) hands out a short-lived,
// single-use ticket that GET /api/events?ticket=… accepts, and nothing else does.
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessPolicy } from '../../engine/auth/access-policy';
import { TokenStore } from '../../engine/auth/tokens';
import { EventBus, type KilnEvent } from '../../engine/events/event-bus';
import { ActionHistory } from '../../engine/history/action-history';
import type { ApiStatus, EventTicket } from '../../engine/common/api-types';
import { EventTickets, loadOrCreateToken } from '../../engine/http/auth';
import { HttpApi, type HttpApiOptions } from '../../engine/http/server';
import { LogHub } from '../../engine/logs/log-hub';
import { MetricsCollector } from '../../engine/metrics/collector';
import { SseClient, tempDir } from './helpers';

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string; json: any }

function call(base: string, path: string, opts: { method?: string; token?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    const req = request(new URL(path, base), { method: opts.method ?? 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      // An accepted event stream never ends by itself: read the head and hang up.
      if (String(res.headers['content-type']).startsWith('text/event-stream')) {
        res.destroy();
        return resolve({ status: res.statusCode!, headers: res.headers, body: '', json: undefined });
      }
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        let json: any;
        try { json = JSON.parse(body); } catch { json = undefined; }
        resolve({ status: res.statusCode!, headers: res.headers, body, json });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function setup(extra: Partial<HttpApiOptions>) {
  const tmp = tempDir();
  const bus = new EventBus();
  const logs = new LogHub({ dir: join(tmp.dir, 'logs'), pollMs: 50 });
  logs.attach(bus);
  const history = new ActionHistory();
  history.attach(bus);
  const metrics = new MetricsCollector(bus, { concurrency: 1, storeStats: () => ({ bytes: 1, blobs: 1, budgetBytes: 100 }) });
  const token = loadOrCreateToken(tmp.dir);
  const events: KilnEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const api = new HttpApi({
    host: '127.0.0.1', port: 0, token, requireTokenOnLoopback: false, bus, metrics, history, logs,
    rendererDir: join(tmp.dir, 'renderer'),
    metricsIntervalMs: 100,
    status: (): ApiStatus => ({ serving: true, executing: true, grpcUrl: 'grpc://127.0.0.1:1', httpUrl: api.url, version: '0.1.0',
      uptimeMs: 1, host: '127.0.0.1', concurrency: 1, cacheBudgetBytes: 100 }),
    setExecution: () => {},
    ...extra,
  });
  const cleanup = async () => {
    await api.close();
    metrics.stop();
    logs.close();
    tmp.cleanup();
  };
  return { tmp, token, events, api, cleanup };
}

describe('EventTickets', () => {
  it('issues random tickets that work once, before they expire', () => {
    let now = 1_000;
    const t = new EventTickets(5_000, 100, () => now);
    const a = t.issue();
    const b = t.issue();
    expect(a.ticket).not.toBe(b.ticket);
    expect(a.ticket.length).toBeGreaterThan(40);
    expect(a.expiresInMs).toBe(5_000);
    expect(t.redeem(a.ticket)).toBe(true);
    expect(t.redeem(a.ticket)).toBe(false); // single use
    expect(t.redeem('kev_made-up')).toBe(false);
    now += 5_000;
    expect(t.redeem(b.ticket)).toBe(false); // expired
    expect(t.size).toBe(0);
  });

  it('keeps at most `max` tickets, dropping the oldest', () => {
    const t = new EventTickets(60_000, 3);
    const first = t.issue().ticket;
    for (let i = 0; i < 5; i++) t.issue();
    expect(t.size).toBe(3);
    expect(t.redeem(first)).toBe(false);
  });
});

describe.each([
  ['the dashboard token (off loopback)', false],
  ['the access policy (off loopback)', true],
])('GET /api/events with a ticket, authorised by %s', (_name, withPolicy) => {
  let t: ReturnType<typeof setup>;
  let base: string;
  beforeAll(async () => {
    const tmp = tempDir();
    const access = withPolicy
      ? new AccessPolicy({ tokens: new TokenStore(join(tmp.dir, 'tokens.json')), requireTokenOnLoopback: false, extraToken: () => t.token })
      : undefined;
    t = setup({ treatLoopbackAsRemote: true, access, eventTicketTtlMs: 400 });
    base = (await t.api.listen()).url;
  });
  afterAll(() => t.cleanup());

  it('refuses the stream without a token or ticket', async () => {
    expect((await call(base, '/api/events')).status).toBe(401);
    expect((await call(base, '/api/session', { method: 'POST' })).status).toBe(401);
    expect((await call(base, '/api/session', { method: 'POST', token: 'wrong' })).status).toBe(401);
  });

  it('opens the stream once with a ticket from POST /api/session, and never echoes the token', async () => {
    const r = await call(base, '/api/session', { method: 'POST', token: t.token });
    expect(r.status).toBe(201);
    const { ticket, expiresInMs } = r.json as EventTicket;
    expect(ticket).toBeTruthy();
    expect(expiresInMs).toBe(400);
    expect(r.body).not.toContain(t.token);
    expect(ticket).not.toContain(t.token);

    const sse = await SseClient.connect(`${base}api/events?ticket=${encodeURIComponent(ticket)}`);
    try {
      expect(sse.res.statusCode).toBe(200);
      await sse.waitFor((e) => e.event === 'metrics', 'metrics over a ticketed stream');
    } finally {
      sse.close();
    }
    const again = await call(base, `/api/events?ticket=${encodeURIComponent(ticket)}`);
    expect(again.status).toBe(401);
    expect(again.json.error.message).toMatch(/ticket is unknown, used or expired/);
    // Rejections are recorded without the secret.
    const logged = JSON.stringify(t.events.filter((e) => e.type === 'auth.rejected'));
    expect(logged).not.toContain(ticket);
    expect(logged).not.toContain(t.token);
  }, 30_000);

  it('accepts a ticket nowhere but the event stream, and not after it expires', async () => {
    const issue = async () => ((await call(base, '/api/session', { method: 'POST', token: t.token })).json as EventTicket).ticket;
    const elsewhere = await issue();
    expect((await call(base, `/api/status?ticket=${elsewhere}`)).status).toBe(401);
    expect((await call(base, `/api/tokens?ticket=${elsewhere}`)).status).toBe(401);
    const late = await issue();
    await new Promise((r) => setTimeout(r, 600));
    expect((await call(base, `/api/events?ticket=${late}`)).status).toBe(401);
    // A ticket is no substitute for the token when writing either.
    expect((await call(base, `/api/session?ticket=${await issue()}`, { method: 'POST' })).status).toBe(401);
    expect((await call(base, '/api/session')).status).toBe(401); // GET: not even looked at without a token
  }, 30_000);
});

describe('GET /api/events on loopback without require-token', () => {
  let t: ReturnType<typeof setup>;
  let base: string;
  beforeAll(async () => {
    t = setup({});
    base = (await t.api.listen()).url;
  });
  afterAll(() => t.cleanup());

  it('still needs no ticket', async () => {
    expect((await call(base, '/api/events')).status).toBe(200);
  });

  it('answers 405 to a GET on /api/session', async () => {
    const r = await call(base, '/api/session');
    expect(r.status).toBe(405);
  });
});
