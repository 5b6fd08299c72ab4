// The polite farm on a real engine: mode, pause and per-action signals through
// the HTTP API, on a real running action (its CPU time stops growing while
// paused), health, /api/status and Prometheus.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ActionDetail, ApiStatus } from '../../engine/common/api-types';
import type { DeskSnapshot, FarmStatus, HealthReport } from '../../engine/common/farm-modes';
import type { Engine } from '../../engine/engine';
import { SlotGovernor } from '../../engine/governor/slot-governor';
import { Status } from '../helpers/clients';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';
import { startTestEngine, type TestEngine, type TestEngineOptions } from '../helpers/engine';
import { executeRequest, responseOf, uploadAction } from '../execution/harness';
import { waitFor } from '../observability/helpers';

const linux = process.platform === 'linux';
let t: TestEngine | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

let desk: Omit<DeskSnapshot, 'at'> = {};
const bubblewrapWorks = probeBubblewrap({ dataDir: '/nonexistent-kiln' }).available;

async function start(mode: 'polite' | 'normal' | 'all-out' = 'polite') {
  desk = { othersBusy: 0 };
  t = await startTestEngine({
    // Sandboxed where bubblewrap works, so pause and signals are shown to reach an action through bwrap.
    config: { mode, concurrency: 2, sandbox: bubblewrapWorks ? 'on' : 'off' },
    deskSignals: { sample: async () => desk },
    cores: 2,
    governor: new SlotGovernor({ cooldownMs: 0, riseDelayMs: 0 }),
  } as TestEngineOptions);
  return t;
}

async function call(engine: Engine, path: string, init: { method?: string; body?: unknown } = {}) {
  const res = await fetch(new URL(path, engine.httpUrl), {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${engine.httpToken}`, 'content-type': 'application/json' },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { status: res.status, json: (text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as any };
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** The process state letter: T while stopped (SIGSTOP), R or S otherwise. */
function stateOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
}

function niceOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

async function gain(pid: number, ms: number): Promise<number> {
  const before = cpuTicks(pid);
  await new Promise((r) => setTimeout(r, ms));
  return cpuTicks(pid) - before;
}

/** Starts a spinning action through Execute; resolves with its id, pid and the Execute call's end. */
async function spinningAction(te: TestEngine, salt: string) {
  // The marker (the shell's $0) finds the process on the host: sandboxed, $$ is its pid inside its PID namespace.
  const marker = `kiln-spin-${salt}-${process.pid}`;
  // It prints its nice value as it starts (field 19 of its stat), before anything could renice it.
  const digest = await uploadAction(te.clients, { argv: ['/bin/sh', '-c', 'echo $$ $(cut -d" " -f19 /proc/$$/stat); while :; do :; done', marker], doNotCache: true, salt });
  const call = te.clients.execution.execute.collect(executeRequest(digest));
  call.catch(() => {});
  const id = await waitFor(() => te.engine.history.list({ state: 'running', q: '' }).items.find((a) => !seen.has(a.id))?.id, 'the action to run');
  seen.add(id);
  const out = join(te.dataDir, 'logs', `${encodeURIComponent(id)}.stdout`);
  const line = await waitFor(() => existsSync(out) && readFileSync(out, 'utf8').endsWith('\n') && readFileSync(out, 'utf8').trim(), 'its pid', 30_000);
  const [innerPid, niceAtStart] = line.split(' ').map(Number);
  return { id, pid: hostPid(innerPid, marker), niceAtStart, call };
}

/** The host pid of the process that is `innerPid` in its own PID namespace (the last NSpid) and carries the marker. */
function hostPid(innerPid: number, marker: string): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const nspids = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1].trim().split(/\s+/).map(Number);
      if (nspids?.at(-1) === innerPid && readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').includes(marker)) return Number(name);
    } catch {
      // Gone meanwhile.
    }
  }
  throw new Error(`no process ${innerPid} carrying ${marker}`);
}
const seen = new Set<string>();

describe.skipIf(!linux)('the polite farm through the HTTP API (needs /proc)', () => {
  it('runs polite actions at nice 19, pauses the farm (CPU time stops growing, Execute stays open) and resumes it', async () => {
    const te = await start('polite');
    const { engine } = te;
    const { id, pid, niceAtStart, call: execute } = await spinningAction(te, 'pause');
    // Born at nice 19 (inherited at fork), not reniced after it may have run at normal priority.
    expect(niceAtStart).toBe(19);
    expect(niceOf(pid)).toBe(19);
    // At nice 19 on a busy shared machine the action may get no CPU at all, so this test reads its
    // state (T: stopped); the next one, at normal priority, watches its CPU time stop and go.
    expect(stateOf(pid)).not.toBe('T');

    const paused = await call(engine, '/api/pause', { method: 'POST', body: { minutes: 15 } });
    expect(paused.status).toBe(200);
    expect(paused.json as FarmStatus).toMatchObject({ slots: 0, reason: 'paused', summary: '0 of 2 slots: paused' });
    expect(paused.json.paused.until - paused.json.paused.since).toBe(15 * 60_000);
    await waitFor(() => stateOf(pid) === 'T', 'the action to be stopped');
    expect(await gain(pid, 1_500)).toBe(0);
    let ended = false;
    execute.then(() => (ended = true), () => (ended = true));
    expect(ended).toBe(false);

    const status = (await call(engine, '/api/status')).json as ApiStatus;
    expect(status.farm).toMatchObject({ mode: 'polite', slots: 0, paused: { until: paused.json.paused.until } });
    expect(status.health?.map((p) => p.id)).toContain('farm-paused');
    const detail = (await call(engine, `/api/actions/${id}`)).json as ActionDetail;
    expect(detail.stopped).toBe(true);
    expect(detail.controls).toMatchObject([{ control: 'signal', signal: 'STOP', by: 'the farm pause', result: 'paused (SIGSTOP)' }]);

    const resumed = (await call(engine, '/api/pause', { method: 'DELETE' })).json as FarmStatus;
    expect(resumed).toMatchObject({ slots: 2 });
    expect(resumed.paused).toBeUndefined();
    await waitFor(() => stateOf(pid) !== 'T', 'the action to run again');
    expect(((await call(engine, '/api/health')).json as HealthReport).problems.map((p) => p.id)).not.toContain('farm-paused');

    const cancelled = await call(engine, `/api/actions/${id}/cancel`, { method: 'POST' });
    expect(cancelled).toMatchObject({ status: 200, json: { id, done: expect.stringMatching(/cancelled while running/) } });
    const ops = await execute;
    expect(responseOf(ops.at(-1)!).status?.code).toBe(Status.CANCELLED);
    const after = (await call(engine, `/api/actions/${id}`)).json as ActionDetail;
    expect(after.controls?.map((c) => c.control)).toEqual(['signal', 'signal', 'cancel']);

    // Back in normal mode, the same slots start actions at normal priority again.
    expect((await call(engine, '/api/mode', { method: 'PUT', body: { mode: 'normal' } })).status).toBe(200);
    const normal = await spinningAction(te, 'after-polite');
    expect(normal.niceAtStart).toBe(niceOf(process.pid));
    expect((await call(engine, `/api/actions/${normal.id}/cancel`, { method: 'POST' })).status).toBe(200);
    await normal.call.catch(() => {});
  });

  it('pauses, resumes and signals one action from its detail view, recording each in its history', async () => {
    const te = await start('normal');
    const { engine } = te;
    const { id, pid, call: execute } = await spinningAction(te, 'signal');
    expect(niceOf(pid)).toBe(niceOf(process.pid));
    expect((await call(engine, `/api/actions/${id}/signal`, { method: 'POST', body: { signal: 'STOP' } })).json).toEqual({ id, done: 'paused (SIGSTOP)' });
    await new Promise((r) => setTimeout(r, 300));
    expect(await gain(pid, 1_500)).toBe(0);
    expect((await call(engine, `/api/actions/${id}/signal`, { method: 'POST', body: { signal: 'SIGCONT' } })).json).toEqual({ id, done: 'resumed (SIGCONT)' });
    await new Promise((r) => setTimeout(r, 300));
    expect(await gain(pid, 1_500)).toBeGreaterThan(0);
    expect((await call(engine, `/api/actions/${id}/signal`, { method: 'POST', body: { signal: 'TERM' } })).json).toEqual({ id, done: 'sent SIGTERM' });
    const result = responseOf((await execute).at(-1)!).result;
    expect(result?.exitCode).toBe(143);
    const detail = (await call(engine, `/api/actions/${id}`)).json as ActionDetail;
    expect(detail.controls?.map((c) => [c.signal, c.by])).toEqual([
      ['STOP', 'the dashboard'],
      ['CONT', 'the dashboard'],
      ['TERM', 'the dashboard'],
    ]);
  });
});

describe('farm mode, health and bad requests through the HTTP API', () => {
  it('switches mode at once, remembers it in settings.json, and exports the target slots', async () => {
    const te = await start('polite');
    const { engine } = te;
    desk = { othersBusy: 0, onBattery: true, batteryPercent: 80 };
    await engine.farm!.tick();
    expect((await call(engine, '/api/mode')).json).toMatchObject({ mode: 'polite', slots: 1, maxSlots: 2, summary: '1 of 2 slots: on battery' });
    // The scheduler runs the farm's choice; Settings keeps showing (and saving) the configured ceiling.
    expect(engine.scheduler!.concurrency).toBe(1);
    expect((await call(engine, '/api/settings')).json.concurrency).toBe(2);
    const allOut = await call(engine, '/api/mode', { method: 'PUT', body: { mode: 'all-out' } });
    expect(allOut).toMatchObject({ status: 200, json: { mode: 'all-out', slots: 2, background: false } });
    expect(allOut.json.history.map((p: { slots: number }) => p.slots)).toEqual([2, 1, 2]);
    expect(JSON.parse(readFileSync(join(te.dataDir, 'settings.json'), 'utf8'))).toMatchObject({ mode: 'all-out' });
    expect(engine.scheduler!.concurrency).toBe(2);
    const prom = (await call(engine, '/metrics')).json as string;
    expect(prom).toMatch(/^kiln_farm_target_slots 2$/m);
    expect(prom).toMatch(/^kiln_farm_paused 0$/m);
    expect(prom).toMatch(/^kiln_farm_mode\{mode="all-out"\} 1$/m);
  });

  it('names execution off while Bazel calls Execute in GET /api/health', async () => {
    const te = await start('normal');
    const { engine } = te;
    expect((await call(engine, '/api/health')).json.problems).toEqual([]);
    engine.setExecutionEnabled(false);
    const digest = await uploadAction(te.clients, { argv: ['/bin/true'] });
    await te.clients.execution.execute.collect(executeRequest(digest)).catch(() => {});
    const report = (await call(engine, '/api/health')).json as HealthReport;
    expect(report.problems[0]).toMatchObject({ id: 'execution-off', severity: 'error' });
    engine.setExecutionEnabled(true);
    expect((await call(engine, '/api/health')).json.problems).toEqual([]);
  });

  it('answers bad requests with a status and a message that says what to send', async () => {
    const { engine } = await start('normal');
    const bad = async (path: string, method: string, body?: unknown) => {
      const r = await call(engine, path, { method, body });
      return [r.status, r.json.error?.message];
    };
    expect(await bad('/api/mode', 'PUT', { mode: 'turbo' })).toEqual([400, '"mode" must be one of polite, normal, all-out, like {"mode": "polite"}']);
    expect(await bad('/api/mode', 'POST', {})).toEqual([405, 'POST is not allowed here']);
    expect((await bad('/api/pause', 'POST', { minutes: -5 }))[0]).toBe(400);
    expect((await bad('/api/pause', 'POST', { minutes: '15' }))[1]).toMatch(/"minutes" must be a number/);
    expect((await bad('/api/actions/nope/signal', 'POST', { signal: 'HUP' }))[1]).toMatch(/"signal" must be one of STOP, CONT, TERM, INT, KILL/);
    expect(await bad('/api/actions/nope/signal', 'POST', { signal: 'TERM' })).toEqual([404, expect.stringMatching(/no running action "nope"/)]);
    expect(await bad('/api/actions/nope/cancel', 'POST')).toEqual([404, expect.stringMatching(/no queued or running action "nope"/)]);
    // A pause with no body lasts until resumed.
    const until = await call(engine, '/api/pause', { method: 'POST' });
    expect(until.json.paused).toEqual({ since: expect.any(Number) });
  });
});
