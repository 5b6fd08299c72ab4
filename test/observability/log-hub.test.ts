import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { EventBus } from '../../engine/events/event-bus';
import { LogHub, LogNotFoundError } from '../../engine/logs/log-hub';
import { tempDir, waitFor } from './helpers';

const timing = { queuedMs: 0, inputFetchMs: 0, executionMs: 0, outputUploadMs: 0, totalMs: 0 };

describe('LogHub', () => {
  let tmp: ReturnType<typeof tempDir>;
  let hub: LogHub;
  let bus: EventBus;

  beforeEach(() => {
    tmp = tempDir();
    bus = new EventBus();
    hub = new LogHub({ dir: join(tmp.dir, 'logs'), pollMs: 50 });
    hub.attach(bus);
  });
  afterEach(() => {
    hub.close();
    tmp.cleanup();
  });

  function startAction(id: string) {
    const paths = hub.pathsFor(id);
    bus.emit({ type: 'action.queued', id, at: 1, actionDigest: 'd', instance: '' });
    bus.emit({ type: 'action.started', id, at: 2, slot: 0, stdoutPath: paths.stdout, stderrPath: paths.stderr });
    return paths;
  }

  async function collect(it: AsyncIterable<{ data: Buffer }>, into: Buffer[]) {
    for await (const c of it) into.push(c.data);
  }

  it('delivers bytes while the action runs and ends after it finishes and is drained', async () => {
    const paths = startAction('a1');
    const got: Buffer[] = [];
    const late: Buffer[] = [];
    const reader = collect(hub.read('a1', 'stdout'), got);
    appendFileSync(paths.stdout, 'line 1\n');
    await waitFor(() => Buffer.concat(got).toString() === 'line 1\n', 'first line while running');
    // A second reader from an offset, joining mid-run.
    const second = collect(hub.read('a1', 'stdout', { offset: 5 }), late);
    appendFileSync(paths.stdout, 'line 2\n');
    await waitFor(() => Buffer.concat(got).toString().includes('line 2'), 'second line');
    appendFileSync(paths.stdout, 'last\n');
    bus.emit({ type: 'action.finished', id: 'a1', at: 3, outcome: 'success', exitCode: 0, timing });
    await Promise.all([reader, second]);
    expect(Buffer.concat(got).toString()).toBe('line 1\nline 2\nlast\n');
    expect(Buffer.concat(late).toString()).toBe('1\nline 2\nlast\n');
  }, 30_000);

  it('lets a reader wait for an action that is only queued, and honours limit', async () => {
    bus.emit({ type: 'action.queued', id: 'q', at: 1, actionDigest: 'd', instance: '' });
    const got: Buffer[] = [];
    const reader = collect(hub.read('q', 'stderr', { limit: 4 }), got);
    const paths = hub.pathsFor('q');
    writeFileSync(paths.stderr, 'abcdefgh');
    bus.emit({ type: 'action.started', id: 'q', at: 2, slot: 0, stdoutPath: paths.stdout, stderrPath: paths.stderr });
    await reader;
    expect(Buffer.concat(got).toString()).toBe('abcd');
  }, 30_000);

  it('ends at once for an action that finished without running, and rejects unknown ids', async () => {
    bus.emit({ type: 'action.queued', id: 'c', at: 1, actionDigest: 'd', instance: '' });
    bus.emit({ type: 'action.finished', id: 'c', at: 2, outcome: 'cached', timing });
    const got: Buffer[] = [];
    await collect(hub.read('c', 'stdout'), got);
    expect(got).toEqual([]);
    await expect(collect(hub.read('nope', 'stdout'), [])).rejects.toBeInstanceOf(LogNotFoundError);
  });

  it('stops a reader when its signal aborts', async () => {
    startAction('s');
    const ac = new AbortController();
    const reader = collect(hub.read('s', 'stdout', { signal: ac.signal }), []);
    ac.abort();
    await reader;
  });
});

describe('LogHub retention', () => {
  it("counts a finished action's logs by the sizes its digests carry", async () => {
    const tmp = tempDir();
    const bus = new EventBus();
    const hub = new LogHub({ dir: tmp.dir, clock: new ManualClock() });
    const off = hub.attach(bus);
    try {
      const p = hub.pathsFor('a');
      writeFileSync(p.stdout, 'x'.repeat(7));
      writeFileSync(p.stderr, 'y'.repeat(5));
      bus.emit({ type: 'action.queued', id: 'a', at: 0, actionDigest: 'd/1', instance: '' });
      bus.emit({ type: 'action.started', id: 'a', at: 0, slot: 0, stdoutPath: p.stdout, stderrPath: p.stderr });
      const finished = { type: 'action.finished' as const, id: 'a', at: 1, outcome: 'success' as const, timing: {} as never };
      bus.emit({ ...finished, stdoutDigest: 'aa/7', stderrDigest: 'bb/5' });
      await waitFor(() => hub.stats().finished === 1, 'the log to be accounted');
      expect(hub.stats().finishedBytes).toBe(12);
      // Without digests (an action that failed before it ran) the files are measured.
      const q = hub.pathsFor('b');
      writeFileSync(q.stdout, 'z'.repeat(3));
      bus.emit({ type: 'action.started', id: 'b', at: 0, slot: 0, stdoutPath: q.stdout, stderrPath: q.stderr });
      bus.emit({ ...finished, id: 'b' });
      await waitFor(() => hub.stats().finished === 2, 'the second log to be accounted');
      expect(hub.stats().finishedBytes).toBe(15);
    } finally {
      off();
      hub.close();
      tmp.cleanup();
    }
  });

  it('deletes the oldest finished logs beyond count, bytes and age', async () => {
    const tmp = tempDir();
    const clock = new ManualClock();
    const hub = new LogHub({ dir: tmp.dir, clock, retention: { maxLogs: 3, maxBytes: 1_000, maxAgeMs: 60_000 } });
    try {
      const finish = async (id: string, bytes: number) => {
        const p = hub.pathsFor(id);
        writeFileSync(p.stdout, 'x'.repeat(bytes));
        writeFileSync(p.stderr, '');
        hub.start(id, p);
        await hub.finish(id);
        return p;
      };
      const first = await finish('l0', 10);
      for (let i = 1; i < 5; i++) await finish(`l${i}`, 10);
      expect(hub.stats().finished).toBe(3);
      expect(hub.has('l0')).toBe(false);
      expect(hub.has('l1')).toBe(false);
      expect(existsSync(first.stdout)).toBe(false);
      expect(hub.has('l4')).toBe(true);

      await finish('big', 995);
      expect(hub.stats().finishedBytes).toBeLessThanOrEqual(1_000);
      expect(hub.has('big')).toBe(true);
      expect(hub.has('l2')).toBe(false);

      // A running action's log is never removed by retention; finished ones age out.
      hub.start('running', hub.pathsFor('running'));
      clock.advance(61_000);
      await hub.prune();
      expect(hub.stats().finished).toBe(0);
      expect(hub.has('running')).toBe(true);
    } finally {
      hub.close();
      tmp.cleanup();
    }
  }, 30_000);

  it('keeps the logs of actions that ran however many cache hits come after them', async () => {
    const tmp = tempDir();
    const clock = new ManualClock();
    const hub = new LogHub({ dir: tmp.dir, clock, retention: { maxLogs: 3, maxBytes: 1_000, maxAgeMs: 60_000 } });
    try {
      const ran = hub.pathsFor('ran');
      writeFileSync(ran.stdout, 'real output');
      writeFileSync(ran.stderr, '');
      hub.start('ran', ran);
      await hub.finish('ran');
      // Cache hits: queued and finished, never started (no files).
      for (let i = 0; i < 10; i++) {
        hub.expect(`hit${i}`);
        await hub.finish(`hit${i}`);
      }
      expect(hub.has('ran')).toBe(true);
      expect(existsSync(ran.stdout)).toBe(true);
      // The hits are kept under the same count limit, in a queue of their own: the newest three.
      expect(['hit6', 'hit7', 'hit8', 'hit9'].map((id) => hub.has(id))).toEqual([false, true, true, true]);
      // A kept hit still reads as an empty log, not as unknown.
      const chunks: Buffer[] = [];
      for await (const c of hub.read('hit9', 'stdout')) chunks.push(c.data);
      expect(chunks).toEqual([]);
      clock.advance(61_000);
      await hub.prune();
      expect(hub.stats().finished).toBe(0);
    } finally {
      hub.close();
      tmp.cleanup();
    }
  });
});
