import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { EventBus } from '../../engine/events/event-bus';
import { MetricsCollector } from '../../engine/metrics/collector';
import { startHostSampler } from '../../engine/metrics/host-sampler';
import { cpuLoadBetween, parseMeminfo, parseProcStat } from '../../engine/metrics/proc-host-sample';
import { parsePrometheus, sampleValue } from './prom-parser';
import { waitFor } from './helpers';

const digest = (size: number) => ({ fn: 'sha256' as const, hash: 'a'.repeat(64), size });
const timing = (totalMs: number) => ({ queuedMs: 0, inputFetchMs: 0, executionMs: totalMs, outputUploadMs: 0, totalMs });

function setup() {
  const clock = new ManualClock();
  const bus = new EventBus();
  const store = { bytes: 500, blobs: 5, budgetBytes: 10_000 };
  const m = new MetricsCollector(bus, { concurrency: 2, storeStats: () => store, clock });
  return { clock, bus, m, store };
}

describe('MetricsCollector', () => {
  it('counts a counted CAS lookup event as that many lookups', () => {
    const { clock, bus, m } = setup();
    bus.emit({ type: 'cache.lookup', at: clock.now(), store: 'cas', hit: true, instance: '', count: 5_000 });
    bus.emit({ type: 'cache.lookup', at: clock.now(), store: 'cas', hit: false, instance: '', count: 1_000 });
    bus.emit({ type: 'cache.lookup', at: clock.now(), store: 'cas', hit: false, instance: '' });
    expect(m.snapshot().cas).toEqual({ hits: 5_000, misses: 1_001, rate: 5_000 / 6_001 });
  });

  it('follows a scripted mix of hits, misses, runs, failures and evictions', () => {
    const { clock, bus, m } = setup();
    const t0 = clock.now();
    const lookup = (store: 'ac' | 'cas', hit: boolean) => bus.emit({ type: 'cache.lookup', at: clock.now(), store, hit, instance: '' });
    lookup('ac', true);
    lookup('ac', false);
    lookup('ac', false);
    lookup('ac', false);
    lookup('cas', true);
    lookup('cas', true);
    lookup('cas', true);
    lookup('cas', false);
    bus.emit({ type: 'blob.written', at: t0, digest: digest(1_000) });
    bus.emit({ type: 'blob.read', at: t0, digest: digest(4_000), bytes: 250 });
    bus.emit({ type: 'blob.evicted', at: t0, digest: digest(1) });
    bus.emit({ type: 'blob.evicted', at: t0, digest: digest(2) });

    for (const id of ['a', 'b', 'c']) {
      bus.emit({ type: 'action.queued', id, at: t0, actionDigest: 'x', instance: '', mnemonic: 'CppCompile', details: { argv: ['gcc', '-c'], env: {}, platform: {}, workingDirectory: '', outputPaths: [], timeoutMs: 1, doNotCache: false } });
    }
    expect(m.snapshot()).toMatchObject({ queueDepth: 3, running: 0 });

    clock.advance(2_000);
    bus.emit({ type: 'action.started', id: 'a', at: clock.now(), slot: 0, stdoutPath: '/o', stderrPath: '/e' });
    bus.emit({ type: 'worker.slot', at: clock.now(), slot: 0, busy: true, actionId: 'a' });
    let s = m.snapshot();
    expect(s).toMatchObject({ queueDepth: 2, running: 1 });
    expect(s.slots[0]).toMatchObject({ slot: 0, busy: true, current: { id: 'a', mnemonic: 'CppCompile', argv0: 'gcc' } });
    expect(s.slots[1]).toMatchObject({ slot: 1, busy: false });

    clock.advance(30_000);
    bus.emit({ type: 'action.finished', id: 'a', at: clock.now(), outcome: 'failure', exitCode: 1, timing: timing(32_000) });
    bus.emit({ type: 'worker.slot', at: clock.now(), slot: 0, busy: false });
    bus.emit({ type: 'action.finished', id: 'b', at: clock.now(), outcome: 'cached', timing: timing(5) });
    bus.emit({ type: 'auth.rejected', at: clock.now(), transport: 'http', reason: 'wrong token' });
    bus.emit({ type: 'execution.toggled', at: clock.now(), enabled: false });

    s = m.snapshot();
    expect(s.queueDepth).toBe(1);
    expect(s.running).toBe(0);
    expect(s.actionCache).toEqual({ hits: 1, misses: 3, rate: 0.25 });
    expect(s.cas).toEqual({ hits: 3, misses: 1, rate: 0.75 });
    expect(s.bytes.inTotal).toBe(1_000);
    expect(s.bytes.outTotal).toBe(250);
    expect(s.store).toEqual({ bytes: 500, budgetBytes: 10_000, blobs: 5, evictions: 2 });
    expect(s.actions.finishedTotal).toBe(2);
    expect(s.actions.byOutcome).toMatchObject({ failure: 1, cached: 1, success: 0 });
    expect(s.actions.perSecond).toBeCloseTo(2 / 60);
    expect(s.histograms.queueTimeMs.count).toBe(1);
    expect(s.histograms.queueTimeMs.sum).toBe(2_000);
    expect(s.histograms.durationMs.count).toBe(2);
    expect(s.histograms.durationMs.buckets.at(-1)).toEqual({ le: null, count: 2 });
    expect(s.histograms.durationMs.buckets.find((b) => b.le === 10)?.count).toBe(1);
    expect(s.authRejections).toBe(1);
    expect(s.executionEnabled).toBe(false);
    // Slot 0 was busy 30 s of the 32 s since start; slot 1 never.
    expect(s.slots[0].utilization1m).toBeCloseTo(30 / 32, 1);
    expect(s.slots[1].utilization1m).toBe(0);

    // A minute later with the slot idle, the 1m window is empty but the hour remembers.
    clock.advance(90_000);
    s = m.snapshot();
    expect(s.slots[0].utilization1m).toBe(0);
    expect(s.slots[0].utilization1h).toBeGreaterThan(0.2);
    expect(s.slots[0].utilization1h).toBeLessThan(0.3);
    // A running slot counts up to now.
    bus.emit({ type: 'worker.slot', at: clock.now(), slot: 1, busy: true, actionId: 'c' });
    clock.advance(60_000);
    expect(m.snapshot().slots[1].utilization1m).toBeGreaterThan(0.95);
    m.stop();
  });

  it('exposes valid Prometheus text with kiln_* families', () => {
    const { clock, bus, m } = setup();
    bus.emit({ type: 'cache.lookup', at: clock.now(), store: 'ac', hit: true, instance: '' });
    bus.emit({ type: 'action.queued', id: 'a', at: clock.now(), actionDigest: 'x', instance: '' });
    bus.emit({ type: 'action.started', id: 'a', at: clock.now() + 100, slot: 0, stdoutPath: '/o', stderrPath: '/e' });
    bus.emit({ type: 'action.finished', id: 'a', at: clock.now() + 1_500, outcome: 'success', exitCode: 0, timing: timing(1_500) });
    bus.emit({ type: 'blob.evicted', at: clock.now(), digest: digest(3) });
    const text = m.prometheus();
    const fams = parsePrometheus(text);
    for (const name of fams.keys()) expect(name.startsWith('kiln_')).toBe(true);
    expect(fams.get('kiln_action_duration_seconds')?.type).toBe('histogram');
    expect(sampleValue(fams, 'kiln_action_duration_seconds_count')).toBe(1);
    expect(sampleValue(fams, 'kiln_action_duration_seconds_sum')).toBe(1.5);
    expect(sampleValue(fams, 'kiln_action_duration_seconds_bucket', { le: '1' })).toBe(0);
    expect(sampleValue(fams, 'kiln_action_duration_seconds_bucket', { le: '2.5' })).toBe(1);
    expect(sampleValue(fams, 'kiln_action_queue_seconds_sum')).toBe(0.1);
    expect(sampleValue(fams, 'kiln_cache_lookups_total', { store: 'ac', result: 'hit' })).toBe(1);
    expect(sampleValue(fams, 'kiln_actions_finished_total', { outcome: 'success' })).toBe(1);
    expect(sampleValue(fams, 'kiln_store_evictions_total')).toBe(1);
    expect(sampleValue(fams, 'kiln_store_budget_bytes')).toBe(10_000);
    expect(() => parsePrometheus(text.replace('# TYPE kiln_queue_depth gauge\n', ''))).toThrow();
  });
});

describe('host sampler', () => {
  it('samples in the background and stops cleanly', async () => {
    let calls = 0;
    const sampler = startHostSampler(async () => {
      calls++;
      return { sampledAt: calls, cpu: 0.5, cores: 2, memUsedBytes: 1, memTotalBytes: 2, diskUsedBytes: 3, diskTotalBytes: 4 };
    }, 20);
    await waitFor(() => calls >= 3, 'three samples');
    expect(sampler.latest()?.cpu).toBe(0.5);
    sampler.stop();
    const after = calls;
    await new Promise((r) => setTimeout(r, 100));
    expect(calls).toBeLessThanOrEqual(after + 1);
  });
});

describe('system host sample', () => {
  // Both readers on Linux; elsewhere /proc does not exist, so only systeminformation.
  const platforms: NodeJS.Platform[] = process.platform === 'linux' ? ['linux', 'darwin'] : [process.platform];
  it.each(platforms)('reads real CPU, memory and disk numbers (the reader chosen for %s)', async (platform) => {
    const { systemSample } = await import('../../engine/metrics/host-sampler');
    const sample = systemSample(process.cwd(), platform);
    for (const s of [await sample(), await sample()]) {
      expect(s.cpu).toBeGreaterThanOrEqual(0);
      expect(s.cpu).toBeLessThanOrEqual(1);
      expect(s.memUsedBytes).toBeGreaterThan(0);
      expect(s.memTotalBytes).toBeGreaterThan(s.memUsedBytes);
      expect(s.diskTotalBytes).toBeGreaterThan(0);
    }
  }, 30_000);
});

describe('/proc host readings', () => {
  const stat = 'cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 0 0\nintr 1 2 3\n';
  it('counts idle and iowait as idle, the rest as busy', () => {
    expect(parseProcStat(stat)).toEqual({ busy: 160, total: 1000 });
    expect(parseProcStat('intr 1 2\n')).toBeUndefined();
  });
  it('measures load over the interval between two readings', () => {
    const before = parseProcStat(stat)!;
    const after = parseProcStat('cpu  130 5 60 850 50 3 2 0 0 0\n')!;
    // 40 busy jiffies of 100.
    expect(cpuLoadBetween(before, after)).toBeCloseTo(0.4);
    expect(cpuLoadBetween(after, after)).toBe(0);
  });
  it('reads MemTotal and MemAvailable in bytes', () => {
    const text = 'MemTotal:       2048 kB\nMemFree:         100 kB\nMemAvailable:    512 kB\n';
    expect(parseMeminfo(text)).toEqual({ total: 2048 * 1024, available: 512 * 1024 });
    expect(parseMeminfo('MemTotal: 2048 kB\n')).toBeUndefined();
  });
});
