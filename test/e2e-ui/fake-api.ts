// A small stand-in for the engine's HTTP API: serves renderer/dist and the
// /api endpoints with simulated actions (including 10,000 of history), so the
// dashboard can be exercised and photographed without a build running.
// Also handy for `vite dev`: `npx tsx test/e2e-ui/fake-api.ts` then KILN_API=http://127.0.0.1:8999.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve } from 'node:path';
import type {
  ActionDetail,
  ActionOutcome,
  ActionSummary,
  ApiStatus,
  ConnectInfo,
  LargestBlobs,
  MetricsSnapshot,
  SettingName,
  SettingsResponse,
  SseEvent,
  TokenCreated,
  TokenInfo,
} from '../../engine/common/api-types';

import { fakeInvocations } from './fake-invocations';

const DIST = resolve(__dirname, '../../renderer/dist');
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:";
const MNEMONICS = ['CppCompile', 'CppLink', 'Javac', 'GoCompile', 'Genrule', 'TestRunner'];

export interface FakeApi {
  url: string;
  token: string;
  /** Starts one live action that prints numbered, coloured lines once a second. */
  startAction(lines: number): string;
  /** Every /api/events request line, to check how the stream authenticated (LAN mode). */
  eventRequests: string[];
  /** Requests that carried the token in their URL (must stay empty). */
  tokenInUrl: string[];
  /** PUT /api/settings bodies, in order. */
  settingsPuts: Record<string, unknown>[];
  /** Every /api/cache/largest request line. */
  largestRequests: string[];
  close(): Promise<void>;
}

export async function startFakeApi(
  opts: {
    history?: number;
    concurrency?: number;
    port?: number;
    /**
     * LAN mode as a browser on another machine sees it: TLS on, a token on every request
     * (the event stream takes a ticket from POST /api/session), and the LAN endpoints
     * (settings, tokens, connect, CA). Without it the engine predates them (404), except
     * /api/settings (worker slots and cache budget), served either way as a loopback engine does.
     */
    lan?: boolean;
    /** An upstream and two peer Kilns (one reachable, one paused) for the Workers view; finished actions ran on them in turn. */
    remotes?: boolean;
  } = {},
): Promise<FakeApi> {
  const token = 'fake-token';
  const lan = opts.lan ?? false;
  const eventRequests: string[] = [];
  const tokenInUrl: string[] = [];
  const largestRequests: string[] = [];
  const tickets = new Set<string>();
  let savedLan = lan;
  const tokens: TokenInfo[] = [{ name: 'alice', createdAt: new Date(Date.now() - 86_400_000).toISOString() }];
  let tokenSeq = 0;
  let concurrency = opts.concurrency ?? 4;
  let budgetBytes = 20 * 1024 ** 3;
  let invocationHistory = 2000;
  let invocationHistoryDays = 7;
  /** PUT /api/settings bodies, to check what the dashboard sent. */
  const settingsPuts: Record<string, unknown>[] = [];
  const t0 = Date.now();
  let executing = true;
  let seq = 0;
  const actions = new Map<string, ActionSummary>();
  const logs = new Map<string, { stdout: string; stderr: string }>();
  const clients = new Set<{ res: ServerResponse; follow: Set<string> }>();
  const slots: (string | undefined)[] = Array(concurrency).fill(undefined);
  let ac = { hits: 0, misses: 0 };
  let finishedTotal = 0;
  let storeBytes = 6.2 * 1024 ** 3;
  let evictions = 0;
  const byOutcome: Record<ActionOutcome, number> = { success: 0, failure: 0, timeout: 0, cancelled: 0, error: 0, cached: 0 };
  const finishTimes: number[] = [];
  const invocations = fakeInvocations(t0);

  // History: finished actions spread over the last few hours.
  const historyCount = opts.history ?? 10_000;
  for (let i = 0; i < historyCount; i++) {
    const queuedAt = t0 - (historyCount - i) * 1500;
    const cached = i % 3 === 0;
    const failed = !cached && i % 41 === 0;
    const duration = cached ? 3 + (i % 20) : 200 + ((i * 7919) % 9000);
    const a: ActionSummary = {
      id: `h${i}`,
      state: 'finished',
      outcome: cached ? 'cached' : failed ? 'failure' : 'success',
      cached,
      mnemonic: MNEMONICS[i % MNEMONICS.length],
      target: `//services/${['api', 'web', 'core', 'auth'][i % 4]}/pkg${i % 97}:lib${i % 13}`,
      exitCode: cached ? undefined : failed ? 1 : 0,
      stage: 'finished',
      queuedAt,
      startedAt: queuedAt + 10,
      finishedAt: queuedAt + duration,
      durationMs: duration,
      instance: lan && i % 5 === 0 ? 'ci' : '',
      actionDigest: `${(i * 2654435761).toString(16).padStart(8, '0')}${'ab'.repeat(28)}/${140 + (i % 60)}`,
    };
    actions.set(a.id, a);
    if (cached) ac.hits++;
    else ac.misses++;
  }

  function send(e: SseEvent, onlyFollowing?: string) {
    const frame = `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;
    for (const c of clients) if (!onlyFollowing || c.follow.has(onlyFollowing)) c.res.write(frame);
  }

  function update(a: ActionSummary, kind: 'queued' | 'started' | 'stage' | 'finished') {
    actions.set(a.id, a);
    send({ event: 'action', data: { kind, action: a } });
  }

  function appendLog(id: string, stream: 'stdout' | 'stderr', data: string) {
    const l = logs.get(id)!;
    const offset = Buffer.byteLength(l[stream]);
    l[stream] += data;
    send({ event: 'log', data: { id, stream, offset, data } }, id);
  }

  function startAction(lines: number): string {
    const id = `live-${++seq}`;
    const queuedAt = Date.now();
    const a: ActionSummary = {
      id,
      state: 'queued',
      cached: false,
      mnemonic: MNEMONICS[seq % MNEMONICS.length],
      target: `//app/feature${seq}:build`,
      argv0: '/bin/sh',
      stage: 'queued',
      queuedAt,
      instance: '',
      actionDigest: `${seq.toString(16).padStart(64, 'c')}/180`,
    };
    logs.set(id, { stdout: '', stderr: '' });
    update(a, 'queued');
    const tryStart = () => {
      const slot = slots.findIndex((s) => s === undefined);
      if (slot < 0) return void setTimeout(tryStart, 200);
      slots[slot] = id;
      let cur: ActionSummary = { ...a, state: 'running', stage: 'running', startedAt: Date.now(), slot };
      update(cur, 'started');
      let i = 0;
      const timer = setInterval(() => {
        i++;
        if (i <= lines) {
          appendLog(id, 'stdout', `\x1b[2m[${i}/${lines}]\x1b[0m compiling \x1b[1mmodule_${i}.cc\x1b[0m … \x1b[32mok\x1b[0m\n`);
          if (i === 2) appendLog(id, 'stderr', `\x1b[33mwarning:\x1b[0m unused variable 'x' <in module_2.cc>\n`);
          return;
        }
        clearInterval(timer);
        slots[slot] = undefined;
        const now = Date.now();
        cur = { ...cur, state: 'finished', stage: 'finished', outcome: 'success', exitCode: 0, finishedAt: now, durationMs: now - queuedAt };
        ac.misses++;
        finishedTotal++;
        byOutcome.success++;
        finishTimes.push(now);
        storeBytes += 180_000;
        update(cur, 'finished');
        for (const s of ['stdout', 'stderr'] as const) send({ event: 'log-end', data: { id, stream: s, bytes: Buffer.byteLength(logs.get(id)![s]) } }, id);
      }, 1000);
    };
    setTimeout(tryStart, 150);
    return id;
  }

  function metrics(): MetricsSnapshot {
    const now = Date.now();
    while (finishTimes.length && finishTimes[0] < now - 60_000) finishTimes.shift();
    const phase = (now - t0) / 1000;
    return {
      at: now,
      queueDepth: [...actions.values()].filter((a) => a.state === 'queued').length,
      running: slots.filter(Boolean).length,
      slots: slots.map((id, slot) => {
        const a = id ? actions.get(id) : undefined;
        return {
          slot,
          busy: !!id,
          current: a ? { id: a.id, mnemonic: a.mnemonic, target: a.target, argv0: a.argv0, since: a.startedAt ?? now } : undefined,
          utilization1m: id ? 0.6 + 0.1 * slot : 0.1 * slot,
          utilization1h: 0.35,
        };
      }),
      utilization1m: slots.filter(Boolean).length / concurrency,
      utilization1h: 0.35,
      actionCache: { ...ac, rate: ac.hits / Math.max(1, ac.hits + ac.misses) },
      cas: { hits: 8200, misses: 1900, rate: 8200 / 10100 },
      bytes: { inTotal: 3.1e9, outTotal: 7.4e9, inRate: 2e6 + 1.5e6 * Math.sin(phase / 3), outRate: 4e6 + 3e6 * Math.cos(phase / 4) },
      store: { bytes: storeBytes, budgetBytes, blobs: 48_213, evictions },
      actions: { perSecond: finishTimes.length / 60, finishedTotal: finishedTotal + historyCount, byOutcome },
      histograms: { durationMs: { unit: 'ms', buckets: [], sum: 0, count: 0 }, queueTimeMs: { unit: 'ms', buckets: [], sum: 0, count: 0 } },
      host: null,
      authRejections: 0,
      executionEnabled: executing,
    };
  }

  // The largest blobs: a linked binary, a few archives and jars, tailing off. Stable hashes.
  const LARGEST = Array.from({ length: 200 }, (_, i) => ({
    hash: createHash('sha256').update(`blob-${i}`).digest('hex'),
    size: Math.round((1.3 * 1024 ** 3) / (i + 1) ** 1.4) + 4096,
    fn: i === 3 ? 'blake3' : 'sha256',
  }));
  function largest(limit: number): LargestBlobs {
    return { items: LARGEST.slice(0, limit), storeBytes, at: Date.now() };
  }

  function status(): ApiStatus {
    return {
      serving: true,
      executing,
      grpcUrl: lan ? 'grpcs://0.0.0.0:8980' : 'grpc://127.0.0.1:8980',
      httpUrl: lan ? 'https://0.0.0.0:8981/' : 'http://127.0.0.1:8981/',
      version: '0.1.0',
      uptimeMs: Date.now() - t0 + 3 * 3600_000,
      host: lan ? '0.0.0.0' : '127.0.0.1',
      lan: lan ? { addresses: ['192.168.1.20'], tokenRequired: true } : undefined,
      tls: lan,
      tokenRequiredOnLoopback: false,
      concurrency,
      cacheBudgetBytes: budgetBytes,
      instanceNames: lan ? ['', 'ci'] : [''],
      sandbox: lan
        ? { enabled: true, mode: 'auto', runner: 'bubblewrap', reason: 'sandbox: auto, and this is LAN mode', limits: 'cgroup v1: memory, cpus, pids' }
        : {
            enabled: false,
            mode: 'auto',
            reason: "sandbox: auto, but bubblewrap (bwrap) is not installed; install it (Debian/Ubuntu: apt-get install bubblewrap); actions run unsandboxed, as Kiln's user, and can read what it can",
          },
      running: 1,
      ...(opts.remotes
        ? {
            upstream: { url: 'grpcs://cluster.example:443', placement: 'local-first', reachable: true, slots: 16, running: 3, roundTripMs: 41, pendingUploads: 0 },
            peers: [
              { name: 'peer:desk-2', url: 'grpcs://192.168.1.21:8980', source: 'mdns', reachable: true, slots: 4, running: 2, mode: 'normal', executing: true, paused: false, roundTripMs: 3, lastSeen: Date.now() },
              { name: 'peer:desk-3', url: 'grpcs://192.168.1.22:8980', source: 'config', reachable: true, slots: 0, running: 0, mode: 'polite', executing: true, paused: true, problem: 'it is paused', roundTripMs: 5, lastSeen: Date.now() },
            ],
          }
        : {}),
    };
  }

  function settings(): SettingsResponse {
    const restartRequired = savedLan !== lan;
    return {
      lan: savedLan,
      lanActive: lan,
      restartRequired,
      message: restartRequired ? `LAN mode turns ${savedLan ? 'on' : 'off'} when Kiln restarts (a --host flag or config file still wins)` : `LAN mode is ${savedLan ? 'on' : 'off'}`,
      concurrency,
      cacheSizeBytes: budgetBytes,
      invocationHistory,
      invocationHistoryDays,
      fixedAtStart: [],
    };
  }

  const SIZE_UNITS: Record<string, number> = { '': 1, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };
  /** PUT /api/settings as the engine answers it (engine/http/lan-routes.ts), with its checks and messages. */
  async function putSettings(req: IncomingMessage, res: ServerResponse) {
    const body = await readJson(req);
    settingsPuts.push(body);
    const bad = (message: string) => json(res, 400, { error: { code: 400, status: 'INVALID_ARGUMENT', message } });
    const c = body.concurrency;
    if (c !== undefined && (typeof c !== 'number' || !Number.isInteger(c) || c < 1 || c > 1024)) {
      return bad(`concurrency must be a whole number of worker slots from 1 to 1024, not ${JSON.stringify(c)}`);
    }
    let bytes: number | undefined;
    if (body.cacheSize !== undefined) {
      const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(String(body.cacheSize).trim());
      const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
      if (!m || unit === undefined) return bad(`cacheSize: "${body.cacheSize}" is not a size`);
      bytes = Math.floor(Number(m[1]) * unit);
      if (bytes < 64 * 1024 ** 2) return bad(`the cache budget must be at least 64 MiB (67108864 bytes), not ${bytes}`);
    }
    const ih = body.invocationHistory;
    if (ih !== undefined && (typeof ih !== 'number' || !Number.isInteger(ih) || ih < 10 || ih > 100_000)) {
      return bad(`the invocation history must keep a whole number of invocations from 10 to 100000, not ${JSON.stringify(ih)}`);
    }
    const days = body.invocationHistoryDays;
    if (days !== undefined && (typeof days !== 'number' || !Number.isInteger(days) || days < 1 || days > 365)) {
      return bad(`the invocation history must keep a whole number of days from 1 to 365, not ${JSON.stringify(days)}`);
    }
    const appliedNow: SettingName[] = [];
    const parts: string[] = [];
    if (typeof c === 'number') {
      concurrency = c;
      while (slots.length < c) slots.push(undefined);
      while (slots.length > c && slots[slots.length - 1] === undefined) slots.pop();
      appliedNow.push('concurrency');
      parts.push(`${c} worker slot${c === 1 ? '' : 's'}`);
    }
    if (bytes !== undefined) {
      budgetBytes = bytes;
      storeBytes = Math.min(storeBytes, bytes);
      appliedNow.push('cacheSize');
      parts.push(`a cache budget of ${Number((bytes / 1024 ** 3).toFixed(2))} GiB`);
    }
    if (typeof ih === 'number') {
      invocationHistory = ih;
      appliedNow.push('invocationHistory');
      parts.push(`a history of ${ih} invocations`);
    }
    if (typeof days === 'number') {
      invocationHistoryDays = days;
      appliedNow.push('invocationHistoryDays');
      parts.push(`invocations kept for ${days} day${days === 1 ? '' : 's'}`);
    }
    if (typeof body.lan === 'boolean') savedLan = body.lan;
    const answer = settings();
    return json(res, 200, { ...answer, appliedNow, appliedAtRestart: [], message: parts.length ? `Applied now and saved: ${parts.join(', ')}.` : answer.message });
  }

  function addToken(name: string): TokenCreated {
    const value = `kiln_fake${++tokenSeq}${'x'.repeat(20)}`;
    const info = { name, createdAt: new Date().toISOString() };
    tokens.push(info);
    return { ...info, token: value, bazelFlag: `--remote_header=authorization="Bearer ${value}"` };
  }

  function connect(withToken: boolean): ConnectInfo {
    const created = withToken ? addToken(`connect-${tokenSeq + 1}`) : undefined;
    return {
      endpoint: 'grpcs://192.168.1.20:8980',
      tls: true,
      caUrl: '/api/tls/ca.pem',
      caPath: '/home/kiln/.local/share/kiln/tls/ca.pem',
      bazelrc: [
        'build --remote_executor=grpcs://192.168.1.20:8980',
        'build --tls_certificate=/home/kiln/.local/share/kiln/tls/ca.pem',
        `build --remote_header=authorization="Bearer ${created?.token ?? 'TOKEN'}"`,
      ],
      token: created,
    };
  }

  function detail(a: ActionSummary): ActionDetail {
    const done = a.state === 'finished';
    const total = a.durationMs ?? 0;
    return {
      ...a,
      argv: ['/bin/sh', '-c', 'for i in 1 2 3 4 5; do echo "line $i"; sleep 1; done'],
      env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
      platform: { OSFamily: 'linux', 'container-image': 'none' },
      workingDirectory: '',
      outputPaths: ['out/module.o'],
      inputFiles: 214,
      inputBytes: 3_481_002,
      outputs: done ? [{ path: 'out/module.o', bytes: 184_320, kind: 'file' }] : [],
      ranOn: done ? (opts.remotes ? ['local', 'upstream', 'peer:desk-2'][Number.parseInt(createHash('sha256').update(a.id).digest('hex').slice(0, 2), 16) % 3] : 'local') : undefined,
      timing: done ? { queuedMs: total * 0.05, inputFetchMs: total * 0.1, executionMs: total * 0.78, outputUploadMs: total * 0.07, totalMs: total } : undefined,
      logs: { stdout: true, stderr: true },
    };
  }

  const json = (res: ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const readJson = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
    let body = '';
    for await (const c of req) body += c;
    return JSON.parse(body || '{}');
  };
  const unauthenticated = (res: ServerResponse) =>
    json(res, 401, { error: { code: 401, status: 'UNAUTHENTICATED', message: 'missing Authorization header (expected "Bearer <token>")' } });

  async function handleLan(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const p = url.pathname;
    const m = req.method ?? 'GET';
    if (p === '/api/tls/ca.pem') {
      res.writeHead(200, { 'content-type': 'application/x-pem-file', 'content-disposition': 'attachment; filename="kiln-ca.pem"' });
      res.end('-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n');
      return true;
    }
    if (p === '/api/events') {
      const ticket = url.searchParams.get('ticket');
      if (ticket === null || !tickets.delete(ticket)) return unauthenticated(res), true;
      return false; // served below
    }
    if (req.headers.authorization !== `Bearer ${token}`) return unauthenticated(res), true;
    if (p === '/api/session' && m === 'POST') {
      const ticket = `kev_${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
      tickets.add(ticket);
      return json(res, 201, { ticket, expiresInMs: 30_000 }), true;
    }
    if (p === '/api/settings') {
      if (m === 'PUT') return await putSettings(req, res), true;
      return json(res, 200, settings()), true;
    }
    if (p === '/api/tokens' && m === 'POST') {
      const name = String((await readJson(req)).name ?? '');
      if (tokens.some((t) => t.name === name)) return json(res, 409, { error: { code: 409, status: 'ALREADY_EXISTS', message: `a token named "${name}" exists already` } }), true;
      return json(res, 201, addToken(name)), true;
    }
    if (p === '/api/tokens') return json(res, 200, { tokens }), true;
    const revoke = /^\/api\/tokens\/([^/]+)$/.exec(p);
    if (revoke && m === 'DELETE') {
      const name = decodeURIComponent(revoke[1]);
      const i = tokens.findIndex((t) => t.name === name);
      if (i < 0) return json(res, 404, { error: { code: 404, status: 'NOT_FOUND', message: `no token named "${name}"` } }), true;
      tokens.splice(i, 1);
      return json(res, 200, { revoked: name }), true;
    }
    if (p === '/api/connect') return json(res, m === 'POST' ? 201 : 200, connect(m === 'POST')), true;
    return false;
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    if (req.url?.includes(token)) tokenInUrl.push(req.url);
    if (p === '/api/events') eventRequests.push(req.url ?? '');
    if (lan && p.startsWith('/api/') && (await handleLan(req, res, url))) return;
    if (p === '/api/settings') {
      if (req.method !== 'PUT') return json(res, 200, settings());
      if (req.headers.authorization !== `Bearer ${token}`)
        return json(res, 401, { error: { code: 16, status: 'UNAUTHENTICATED', message: 'A valid API token is required.' } });
      return putSettings(req, res);
    }
    if (p === '/api/status') return json(res, 200, status());
    if (p === '/api/metrics') return json(res, 200, metrics());
    if (p === '/api/assets') {
      // Two builds' remote downloads: one archive fetched, then served from the cache.
      const at = Date.now();
      const uri = 'https://mirror.example/zlib-1.3.tar.gz';
      return json(res, 200, {
        items: [
          { at, uri, outcome: 'hit', bytes: 1_500_000, durationMs: 3, toolInvocationId: 'inv-2' },
          { at: at - 60_000, uri, outcome: 'downloaded', bytes: 1_500_000, durationMs: 840, toolInvocationId: 'inv-1' },
        ],
      });
    }
    if (p === '/api/cache/largest') {
      largestRequests.push(req.url ?? '');
      const text = url.searchParams.get('limit');
      const limit = text === null ? 20 : Number(text);
      if (!Number.isInteger(limit) || limit < 1 || limit > 200)
        return json(res, 400, { error: { code: 400, status: 'BAD_REQUEST', message: `limit must be an integer from 1 to 200, not "${text}"` } });
      return json(res, 200, largest(limit));
    }
    if (p === '/api/execution' && req.method === 'POST') {
      if (req.headers.authorization !== `Bearer ${token}`)
        return json(res, 401, { error: { code: 16, status: 'UNAUTHENTICATED', message: 'A valid API token is required.' } });
      let body = '';
      for await (const c of req) body += c;
      executing = !!JSON.parse(body).enabled;
      send({ event: 'execution', data: { executing, at: Date.now() } });
      return json(res, 200, { executing });
    }
    if (p === '/api/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write(': hi\n\n');
      const c = { res, follow: new Set((url.searchParams.get('follow') ?? '').split(',').filter(Boolean)) };
      clients.add(c);
      req.on('close', () => clients.delete(c));
      return;
    }
    if (p === '/api/invocations') {
      const items = invocations.list();
      return json(res, 200, { items, total: items.length });
    }
    const inv = /^\/api\/invocations\/([^/]+)(\/actions)?$/.exec(p);
    if (inv) {
      const found = invocations.get(decodeURIComponent(inv[1]));
      if (!found) return json(res, 404, { error: { code: 404, status: 'NOT_FOUND', message: `no invocation "${inv[1]}"` } });
      return json(res, 200, inv[2] ? { items: [], total: 0 } : found);
    }
    const blob = /^\/api\/blobs\/([0-9a-f]{64})\/(\d+)$/.exec(p);
    if (blob) {
      const data = invocations.blob(blob[1], Number(blob[2]));
      if (!data) return json(res, 404, { error: { code: 404, status: 'NOT_FOUND', message: 'blob is not in this Kiln\'s CAS' } });
      const limit = Number(url.searchParams.get('limit') ?? 0);
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      return res.end(limit ? data.subarray(0, limit) : data);
    }
    const m = /^\/api\/actions\/([^/]+)(?:\/(stdout|stderr))?$/.exec(p);
    if (m) {
      const a = actions.get(decodeURIComponent(m[1]));
      if (!a) return json(res, 404, { error: { code: 5, status: 'NOT_FOUND', message: 'No such action.' } });
      if (m[2]) {
        const text = logs.get(a.id)?.[m[2] as 'stdout' | 'stderr'] ?? (m[2] === 'stdout' ? `\x1b[1mBuilding\x1b[0m ${a.target}\n\x1b[32mdone\x1b[0m\n` : '');
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        return res.end(text);
      }
      return json(res, 200, detail(a));
    }
    if (p === '/api/actions') {
      const state = url.searchParams.get('state');
      const outcome = url.searchParams.get('outcome');
      const q = (url.searchParams.get('q') ?? '').toLowerCase();
      const limit = Number(url.searchParams.get('limit') ?? 100);
      const cursor = Number(url.searchParams.get('cursor') ?? 0);
      const all = [...actions.values()]
        .filter((a) => (!state || a.state === state) && (!outcome || a.outcome === outcome) && (!q || `${a.mnemonic} ${a.target} ${a.id}`.toLowerCase().includes(q)))
        .sort((x, y) => y.queuedAt - x.queuedAt);
      const items = all.slice(cursor, cursor + limit);
      return json(res, 200, { items, total: all.length, nextCursor: cursor + limit < all.length ? String(cursor + limit) : undefined });
    }
    // Static files.
    const file = join(DIST, p === '/' ? 'index.html' : p);
    if (!file.startsWith(DIST) || !existsSync(file)) return json(res, 404, { error: { code: 5, status: 'NOT_FOUND', message: p } });
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-security-policy': CSP });
    createReadStream(file).pipe(res);
  }

  const server: Server = createServer((req, res) => void handle(req, res));
  const tick = setInterval(() => send({ event: 'metrics', data: metrics() }), 1000);
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    token,
    startAction,
    eventRequests,
    tokenInUrl,
    settingsPuts,
    largestRequests,
    close: async () => {
      clearInterval(tick);
      for (const c of clients) c.res.end();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

if (require.main === module) {
  void startFakeApi({ port: Number(process.env.PORT ?? 8999), lan: process.env.KILN_FAKE_LAN === '1' }).then((f) => {
    console.log(`fake Kiln API on ${f.url} (token ${f.token})`);
    setInterval(() => f.startAction(3 + Math.floor(Math.random() * 5)), 2500);
  });
}
