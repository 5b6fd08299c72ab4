import { describe, expect, it } from 'vitest';
import type { SseEvent } from '../../../engine/common/api-types';
import { LiveConnection, type EventSourceLike } from './live-connection';

class FakeSource implements EventSourceLike {
  onopen: ((ev: Event) => unknown) | null = null;
  onerror: ((ev: Event) => unknown) | null = null;
  closed = false;
  listeners = new Map<string, (ev: MessageEvent) => void>();
  constructor(readonly url: string) {}
  addEventListener(type: string, l: (ev: MessageEvent) => void) {
    this.listeners.set(type, l);
  }
  close() {
    this.closed = true;
  }
  emit(type: string, data: string) {
    this.listeners.get(type)?.({ data } as MessageEvent);
  }
}

function setup(ticket?: () => Promise<string | undefined>) {
  const sources: FakeSource[] = [];
  const events: SseEvent[] = [];
  const log: string[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const conn = new LiveConnection({
    url: (f, t) => `/api/events${f.length ? `?follow=${f.join(',')}` : ''}${t ? `${f.length ? '&' : '?'}ticket=${t}` : ''}`,
    ticket,
    open: (url) => {
      const s = new FakeSource(url);
      sources.push(s);
      return s;
    },
    onEvent: (e) => events.push(e),
    onUp: () => log.push('up'),
    onDown: (ms) => log.push(`down:${ms}`),
    random: () => 0,
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    clearTimer: () => {},
  });
  return { conn, sources, events, log, timers };
}

describe('LiveConnection', () => {
  it('parses named events into typed SSE events', () => {
    const { conn, sources, events } = setup();
    conn.start();
    sources[0].emit('execution', '{"executing":false,"at":5}');
    sources[0].emit('metrics', 'not json');
    expect(events).toEqual([{ event: 'execution', data: { executing: false, at: 5 } }]);
  });

  it('reconnects with growing backoff, resetting once connected', () => {
    const { conn, sources, log, timers } = setup();
    conn.start();
    sources[0].onerror!(new Event('error'));
    expect(sources[0].closed).toBe(true);
    timers.shift()!.fn();
    sources[1].onerror!(new Event('error'));
    timers.shift()!.fn();
    sources[2].onopen!(new Event('open'));
    sources[2].onerror!(new Event('error'));
    expect(log).toEqual(['down:250', 'down:500', 'up', 'down:250']);
    expect(sources).toHaveLength(3);
  });

  it('reconnects with the new follow list only when it changes', () => {
    const { conn, sources } = setup();
    conn.start();
    conn.setFollow(['b', 'a']);
    conn.setFollow(['a', 'b']);
    expect(sources.map((s) => s.url)).toEqual(['/api/events', '/api/events?follow=a,b']);
    expect(sources[0].closed).toBe(true);
  });

  it('ignores events from a replaced connection and stops cleanly', () => {
    const { conn, sources, events, timers } = setup();
    conn.start();
    conn.setFollow(['x']);
    sources[0].emit('execution', '{"executing":true,"at":1}');
    expect(events).toHaveLength(0);
    conn.stop();
    expect(sources[1].closed).toBe(true);
    sources[1].onerror!(new Event('error'));
    expect(timers).toHaveLength(0);
  });

  it('fetches a fresh ticket for every attempt when one is needed', async () => {
    let n = 0;
    const { conn, sources, timers } = setup(async () => `t${++n}`);
    conn.start();
    expect(sources).toHaveLength(0); // not before the ticket is there
    await flush();
    expect(sources.map((s) => s.url)).toEqual(['/api/events?ticket=t1']);
    sources[0].onerror!(new Event('error'));
    timers.shift()!.fn();
    await flush();
    conn.setFollow(['a']);
    await flush();
    expect(sources.map((s) => s.url)).toEqual(['/api/events?ticket=t1', '/api/events?ticket=t2', '/api/events?follow=a&ticket=t3']);
  });

  it('backs off when no ticket can be had, and drops a ticket that arrives too late', async () => {
    let fail = true;
    const pending: ((t: string) => void)[] = [];
    const { conn, sources, log, timers } = setup(() =>
      fail ? Promise.reject(new Error('401')) : new Promise<string>((resolve) => pending.push(resolve)),
    );
    conn.start();
    await flush();
    expect(log).toEqual(['down:250']);
    expect(sources).toHaveLength(0);
    fail = false;
    timers.shift()!.fn();
    conn.setFollow(['x']); // supersedes the attempt whose ticket is still on its way
    pending[0]('old');
    pending[1]('new');
    await flush();
    expect(sources.map((s) => s.url)).toEqual(['/api/events?follow=x&ticket=new']);
    conn.stop();
    conn.start();
    conn.stop();
    pending[2]('after-stop');
    await flush();
    expect(sources).toHaveLength(1);
  });

  it('connects without a ticket when the provider has none (no token set)', async () => {
    const { conn, sources } = setup(async () => undefined);
    conn.start();
    await flush();
    expect(sources.map((s) => s.url)).toEqual(['/api/events']);
  });
});

function flush(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}
