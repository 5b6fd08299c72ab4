import { appendFileSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, type KilnEvent } from '../../engine/events/event-bus';
import { ActionHistory } from '../../engine/history/action-history';
import type { ActionDetail, ActionPage, ApiStatus, MetricsSnapshot } from '../../engine/common/api-types';
import { loadOrCreateToken } from '../../engine/http/auth';
import { HttpApi, type HttpApiOptions } from '../../engine/http/server';
import { LogHub } from '../../engine/logs/log-hub';
import { MetricsCollector } from '../../engine/metrics/collector';
import { parsePrometheus, sampleValue } from './prom-parser';
import { SseClient, tempDir, waitFor } from './helpers';

const timing = { queuedMs: 1, inputFetchMs: 1, executionMs: 1, outputUploadMs: 1, totalMs: 4 };

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string; json: any }

function call(base: string, path: string, opts: { method?: string; token?: string; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const req = request(new URL(path, base), { method: opts.method ?? 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        let json: any;
        try { json = JSON.parse(body); } catch { json = undefined; }
        resolve({ status: res.statusCode!, headers: res.headers, body, json });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function setup(extra: Partial<HttpApiOptions> = {}) {
  const tmp = tempDir();
  const bus = new EventBus();
  const logs = new LogHub({ dir: join(tmp.dir, 'logs'), pollMs: 50 });
  logs.attach(bus);
  const history = new ActionHistory();
  history.attach(bus);
  const metrics = new MetricsCollector(bus, { concurrency: 2, storeStats: () => ({ bytes: 1, blobs: 1, budgetBytes: 100 }) });
  const token = loadOrCreateToken(tmp.dir);
  const state = { executing: true };
  const events: KilnEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const api = new HttpApi({
    host: '127.0.0.1', port: 0, token, requireTokenOnLoopback: false, bus, metrics, history, logs,
    rendererDir: join(tmp.dir, 'renderer'),
    metricsIntervalMs: 100,
    status: (): ApiStatus => ({ serving: true, executing: state.executing, grpcUrl: 'grpc://127.0.0.1:1', httpUrl: api.url, version: '0.1.0',
      uptimeMs: 1, host: '127.0.0.1', concurrency: 2, cacheBudgetBytes: 100 }),
    setExecution: (enabled) => {
      state.executing = enabled;
      bus.emit({ type: 'execution.toggled', at: Date.now(), enabled });
    },
    ...extra,
  });
  const startAction = (id: string) => {
    const paths = logs.pathsFor(id);
    bus.emit({ type: 'action.queued', id, at: Date.now(), actionDigest: 'dd', instance: '', mnemonic: 'Genrule',
      details: { argv: ['sh', '-c', 'echo'], env: { A: 'b' }, platform: {}, workingDirectory: '', outputPaths: [], timeoutMs: 1, doNotCache: false } });
    bus.emit({ type: 'action.started', id, at: Date.now(), slot: 0, stdoutPath: paths.stdout, stderrPath: paths.stderr });
    writeFileSync(paths.stderr, '');
    return paths;
  };
  const finish = (id: string) => bus.emit({ type: 'action.finished', id, at: Date.now(), outcome: 'success', exitCode: 0, timing });
  const cleanup = async () => {
    await api.close();
    metrics.stop();
    logs.close();
    tmp.cleanup();
  };
  return { tmp, bus, logs, history, metrics, token, state, events, api, startAction, finish, cleanup };
}

describe('HTTP API', () => {
  let t: ReturnType<typeof setup>;
  let base: string;
  beforeAll(async () => {
    t = setup();
    base = (await t.api.listen()).url;
  });
  afterAll(() => t.cleanup());

  it('keeps the token in {dataDir}/http-token with mode 0600 and reuses it', () => {
    expect(t.token.length).toBeGreaterThan(20);
    expect(statSync(join(t.tmp.dir, 'http-token')).mode & 0o777).toBe(0o600);
    expect(loadOrCreateToken(t.tmp.dir)).toBe(t.token);
  });

  it('answers status, metrics and Prometheus text', async () => {
    const status = await call(base, '/api/status');
    expect(status.status).toBe(200);
    expect((status.json as ApiStatus).serving).toBe(true);
    const m = await call(base, '/api/metrics');
    expect((m.json as MetricsSnapshot).slots).toHaveLength(2);
    const prom = await call(base, '/metrics');
    expect(prom.headers['content-type']).toMatch(/^text\/plain; version=0.0.4/);
    expect(sampleValue(parsePrometheus(prom.body), 'kiln_store_budget_bytes')).toBe(100);
  });

  it('lists actions, shows details and serves logs whole or tailed', async () => {
    const paths = t.startAction('act-1');
    appendFileSync(paths.stdout, 'hello\nworld\n');
    t.finish('act-1');
    const page = (await call(base, '/api/actions?state=finished&q=genrule')).json as ActionPage;
    expect(page.items.map((i) => i.id)).toContain('act-1');
    const detail = (await call(base, '/api/actions/act-1')).json as ActionDetail;
    expect(detail).toMatchObject({ id: 'act-1', argv: ['sh', '-c', 'echo'], env: { A: 'b' }, outcome: 'success', logs: { stdout: true } });
    const whole = await call(base, '/api/actions/act-1/stdout');
    expect(whole.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(whole.body).toBe('hello\nworld\n');
    expect((await call(base, '/api/actions/act-1/stdout?tail=6')).body).toBe('world\n');
    expect((await call(base, '/api/actions/act-1/stderr')).body).toBe('');
  });

  it('answers bad input with precise 400/404/405 JSON errors', async () => {
    for (const [path, status, text] of [
      ['/api/actions?state=sleeping', 400, 'state must be one of'],
      ['/api/actions?limit=0', 400, 'limit'],
      ['/api/actions?cursor=zzz', 400, 'cursor'],
      ['/api/actions/nope', 404, 'no action "nope"'],
      ['/api/actions/nope/stdout', 404, 'no stdout'],
      ['/api/actions/act-1/stdout?tail=-1', 400, 'tail'],
      ['/api/nothing', 404, 'no API endpoint'],
      ['/api/%E0%A4%A', 400, 'percent-encoding'],
    ] as const) {
      const r = await call(base, path);
      expect(r.status, path).toBe(status);
      expect(r.json.error.message, path).toContain(text);
    }
    const r = await call(base, '/api/status', { method: 'DELETE', token: t.token });
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('GET, HEAD');
  });

  it('flips execution with the token and refuses a missing or wrong one', async () => {
    const before = t.events.filter((e) => e.type === 'auth.rejected').length;
    const missing = await call(base, '/api/execution', { method: 'POST', body: '{"enabled": false}' });
    expect(missing.status).toBe(401);
    expect(missing.json.error.message).toContain('missing Authorization');
    // It says where the token is, not a command that does not print one.
    expect(missing.json.error.message).toContain('{data-dir}/http-token');
    const wrong = await call(base, '/api/execution', { method: 'POST', body: '{"enabled": false}', token: 'nope' });
    expect(wrong.status).toBe(401);
    expect(t.state.executing).toBe(true);
    expect(t.events.filter((e) => e.type === 'auth.rejected').length).toBe(before + 2);

    const bad = await call(base, '/api/execution', { method: 'POST', body: '{"enabled": "no"}', token: t.token });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toContain('boolean "enabled"');
    expect((await call(base, '/api/execution', { method: 'POST', body: 'not json', token: t.token })).status).toBe(400);

    const ok = await call(base, '/api/execution', { method: 'POST', body: '{"enabled": false}', token: t.token });
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ executing: false });
    expect(t.state.executing).toBe(false);
    await call(base, '/api/execution', { method: 'POST', body: '{"enabled": true}', token: t.token });
    expect(t.state.executing).toBe(true);
  });

  it('serves a "not built" page with a strict CSP, and JSON 404s elsewhere', async () => {
    const r = await call(base, '/');
    expect(r.status).toBe(200);
    expect(r.body).toContain('npm run build');
    expect(r.headers['content-security-policy']).toContain("default-src 'self'; script-src 'self'");
    const missing = await call(base, '/nothing.js');
    expect(missing.status).toBe(404);
    expect(missing.json.error.status).toBe('NOT_FOUND');
  });

  it('streams log lines over SSE while the action runs, with action and metrics events', async () => {
    const paths = t.startAction('live-1');
    const sse = await SseClient.connect(`${base}api/events?follow=live-1`);
    try {
      appendFileSync(paths.stdout, 'step 1\n');
      await sse.waitFor((e) => e.event === 'log' && e.data.data.includes('step 1'), 'first log line while running');
      appendFileSync(paths.stdout, 'step 2\n');
      await sse.waitFor((e) => e.event === 'log' && e.data.data.includes('step 2'), 'second log line');
      t.finish('live-1');
      await sse.waitFor((e) => e.event === 'log-end' && e.data.stream === 'stdout', 'log end');
      expect(sse.of('log').filter((d) => d.stream === 'stdout').map((d) => d.data).join('')).toBe('step 1\nstep 2\n');
      await sse.waitFor((e) => e.event === 'action' && e.data.kind === 'finished' && e.data.action.id === 'live-1', 'finished action event');
      await sse.waitFor((e) => e.event === 'metrics', 'metrics tick');
      await call(base, '/api/execution', { method: 'POST', body: '{"enabled": false}', token: t.token });
      await sse.waitFor((e) => e.event === 'execution' && e.data.executing === false, 'execution event');
      await call(base, '/api/execution', { method: 'POST', body: '{"enabled": true}', token: t.token });
    } finally {
      sse.close();
    }
  }, 30_000);

  it('skips a slow SSE reader ahead with a log-gap event instead of buffering', async () => {
    const paths = t.startAction('flood');
    const sse = await SseClient.connect(`${base}api/events?follow=flood`);
    try {
      appendFileSync(paths.stdout, 'start\n');
      await sse.waitFor((e) => e.event === 'log' && e.data.data.includes('start'), 'first chunk');
      sse.res.pause();
      // Far more than socket buffers and the lag bound (1 MiB by default) can absorb.
      const line = `${'x'.repeat(1023)}\n`;
      const block = line.repeat(1024);
      for (let i = 0; i < 32; i++) appendFileSync(paths.stdout, block);
      appendFileSync(paths.stdout, 'the end\n');
      t.finish('flood');
      sse.res.resume();
      const gap = await sse.waitFor((e) => e.event === 'log-gap', 'log-gap');
      expect(gap.data.id).toBe('flood');
      expect(gap.data.to).toBeGreaterThan(gap.data.from);
      await sse.waitFor((e) => e.event === 'log-end' && e.data.stream === 'stdout', 'log end');
      const logs = sse.of('log').filter((d) => d.stream === 'stdout');
      const after = logs.filter((d) => d.offset >= gap.data.to);
      expect(after[0].offset).toBe(gap.data.to);
      expect(after.map((d) => d.data).join('').endsWith('the end\n')).toBe(true);
      const received = logs.reduce((n, d) => n + Buffer.byteLength(d.data), 0);
      expect(received).toBeLessThan(32 * 1024 * 1024);
    } finally {
      sse.close();
    }
  }, 60_000);

  it('cleans up SSE clients on disconnect', async () => {
    const sse = await SseClient.connect(`${base}api/events`);
    await sse.waitFor((e) => e.event === 'metrics', 'first metrics');
    sse.close();
    await waitFor(() => (t.api as any).clients.size === 0, 'client removed');
  }, 30_000);
});

describe('HTTP API off loopback and static files', () => {
  let t: ReturnType<typeof setup>;
  let base: string;
  beforeAll(async () => {
    t = setup({ treatLoopbackAsRemote: true });
    const dist = join(t.tmp.dir, 'renderer');
    mkdirSync(join(dist, 'assets'), { recursive: true });
    writeFileSync(join(dist, 'index.html'), '<!doctype html><script src="/assets/app.js"></script>');
    writeFileSync(join(dist, 'assets', 'app.js'), 'console.log(1)');
    writeFileSync(join(t.tmp.dir, 'secret.txt'), 'do not serve');
    base = (await t.api.listen()).url;
  });
  afterAll(() => t.cleanup());

  it('requires the token on every request from off loopback', async () => {
    for (const path of ['/api/status', '/metrics', '/', '/api/events']) {
      const r = await call(base, path);
      expect(r.status, path).toBe(401);
      expect(r.headers['www-authenticate']).toContain('Bearer');
    }
    expect((await call(base, '/api/status', { token: t.token })).status).toBe(200);
  });

  it('serves the renderer with content types, SPA fallback and no traversal', async () => {
    const index = await call(base, '/', { token: t.token });
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(index.headers['content-security-policy']).toContain("connect-src 'self'");
    const js = await call(base, '/assets/app.js', { token: t.token });
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.body).toBe('console.log(1)');
    expect((await call(base, '/actions/123', { token: t.token })).body).toContain('/assets/app.js');
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2F..%2Fsecret.txt']) {
      const r = await call(base, path, { token: t.token });
      expect(r.body, path).not.toContain('do not serve');
    }
  });
});
