import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import { EventBus } from '../../engine/events/event-bus';
import { ActionHistory, InvalidCursorError } from '../../engine/history/action-history';

const timing = (totalMs: number) => ({ queuedMs: 1, inputFetchMs: 2, executionMs: 3, outputUploadMs: 4, totalMs });

function setup(limits = {}) {
  const clock = new ManualClock();
  const bus = new EventBus();
  const h = new ActionHistory(limits, clock);
  h.attach(bus);
  const queue = (id: string, mnemonic = 'CppCompile', argv = ['gcc', '-c', `${id}.c`], env: Record<string, string> = {}) =>
    bus.emit({
      type: 'action.queued', id, at: clock.now(), actionDigest: `digest-${id}`, instance: 'main', mnemonic, target: `//pkg:${id}`,
      details: { argv, env, platform: { OSFamily: 'linux' }, workingDirectory: 'w', outputPaths: [`${id}.o`], timeoutMs: 1000, doNotCache: false },
    });
  const run = (id: string) => bus.emit({ type: 'action.started', id, at: clock.now(), slot: 1, stdoutPath: '/o', stderrPath: '/e' });
  const finish = (id: string, outcome: 'success' | 'failure' | 'cached' = 'success') =>
    bus.emit({ type: 'action.finished', id, at: clock.now(), outcome, exitCode: outcome === 'failure' ? 2 : 0, timing: timing(10),
      outputs: [{ path: `${id}.o`, bytes: 10, kind: 'file' }], stdoutDigest: 'sd', message: outcome === 'failure' ? 'exit 2' : undefined });
  return { clock, bus, h, queue, run, finish };
}

describe('ActionHistory', () => {
  it('gives each change the action as it stood then, to every listener, and in its JSON', () => {
    const { h, queue, run, finish } = setup();
    const sent: string[] = [];
    const read: string[] = [];
    h.onChange((c) => sent.push(JSON.stringify(c))); // as the dashboard's channel sends it
    h.onChange((c) => read.push(`${c.kind}:${c.action.state}`));
    queue('a0');
    run('a0');
    finish('a0');
    expect(read).toEqual(['queued:queued', 'started:running', 'finished:finished']);
    expect(sent.map((j) => JSON.parse(j) as { kind: string; action: { id: string; state: string } }).map((c) => `${c.kind}:${c.action.id}:${c.action.state}`))
      .toEqual(['queued:a0:queued', 'started:a0:running', 'finished:a0:finished']);
  });

  it('tracks lifecycle and details, and pages newest first with filters', () => {
    const { clock, h, queue, run, finish } = setup();
    const changes: string[] = [];
    h.onChange((c) => changes.push(`${c.kind}:${c.action.id}`));
    for (let i = 0; i < 7; i++) {
      queue(`a${i}`, i % 2 ? 'Javac' : 'CppCompile');
      clock.advance(10);
    }
    run('a0');
    finish('a0');
    run('a1');
    finish('a1', 'failure');
    finish('a2', 'cached');
    run('a3');
    expect(changes.slice(-6)).toEqual(['started:a0', 'finished:a0', 'started:a1', 'finished:a1', 'finished:a2', 'started:a3']);

    const d = h.get('a1')!;
    expect(d).toMatchObject({ state: 'finished', outcome: 'failure', exitCode: 2, argv: ['gcc', '-c', 'a1.c'], argv0: 'gcc', mnemonic: 'Javac',
      platform: { OSFamily: 'linux' }, outputs: [{ path: 'a1.o', bytes: 10, kind: 'file' }], timing: timing(10), message: 'exit 2', slot: 1 });
    expect(h.get('a2')).toMatchObject({ cached: true, state: 'finished' });
    expect(h.get('a3')).toMatchObject({ state: 'running' });

    const p1 = h.list({ limit: 3 });
    expect(p1.items.map((i) => i.id)).toEqual(['a6', 'a5', 'a4']);
    expect(p1.total).toBe(7);
    const p2 = h.list({ limit: 3, cursor: p1.nextCursor });
    expect(p2.items.map((i) => i.id)).toEqual(['a3', 'a2', 'a1']);
    const p3 = h.list({ limit: 3, cursor: p2.nextCursor });
    expect(p3.items.map((i) => i.id)).toEqual(['a0']);
    expect(p3.nextCursor).toBeUndefined();

    expect(h.list({ state: 'queued' }).items.map((i) => i.id)).toEqual(['a6', 'a5', 'a4']);
    expect(h.list({ state: 'running' }).items.map((i) => i.id)).toEqual(['a3']);
    expect(h.list({ outcome: 'failure' }).items.map((i) => i.id)).toEqual(['a1']);
    expect(h.list({ q: 'javac' }).total).toBe(3);
    expect(h.list({ q: 'A5.C' }).items.map((i) => i.id)).toEqual(['a5']);
    expect(() => h.list({ cursor: 'x1' })).toThrow(InvalidCursorError);
  });

  it('stays within count, bytes and age after many thousands of actions', () => {
    const { clock, h, queue, run, finish } = setup({ maxActions: 2_000, maxBytes: 2 * 1024 ** 2, maxAgeMs: 60_000 });
    const bigEnv = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`VAR_${i}`, 'v'.repeat(200)]));
    for (let i = 0; i < 30_000; i++) {
      queue(`x${i}`, 'CppCompile', ['gcc', '-c', `x${i}.c`], i % 3 === 0 ? bigEnv : {});
      run(`x${i}`);
      finish(`x${i}`);
      if (i % 1000 === 0) clock.advance(1_000);
      const s = h.stats();
      if (s.actions > 2_000 || s.bytes > 2 * 1024 ** 2) throw new Error(`over bounds at ${i}: ${JSON.stringify(s)}`);
    }
    const s = h.stats();
    expect(s.actions).toBeGreaterThan(100);
    expect(h.get('x29999')).toBeDefined();
    expect(h.get('x0')).toBeUndefined();
    // Age: everything finished more than a minute ago goes.
    clock.advance(61_000);
    expect(h.list().total).toBe(0);
    expect(h.stats()).toEqual({ actions: 0, bytes: 0 });
  }, 60_000);

  it('keeps one huge action from taking the whole budget', () => {
    const { h, queue } = setup();
    queue('huge', 'X', Array.from({ length: 100_000 }, () => 'y'.repeat(50)));
    expect(h.get('huge')!.argv.length).toBe(1_000);
    expect(h.stats().bytes).toBeLessThan(1024 ** 2);
  });
});
