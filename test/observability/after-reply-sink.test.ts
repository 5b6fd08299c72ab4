// Bookkeeping events a service hands on after its answer: none is lost, the
// order stays, and none is delivered while the service is still answering.
import { describe, expect, it } from 'vitest';
import { AfterReplySink } from '../../engine/events/after-reply-sink';
import type { KilnEvent } from '../../engine/events/event-bus';

const lookup = (at: number): KilnEvent => ({ type: 'cache.lookup', at, store: 'ac', hit: true, instance: '' });

describe('AfterReplySink', () => {
  it('delivers every event, in order, after the current turn of the event loop', async () => {
    const seen: number[] = [];
    const sink = new AfterReplySink({ emit: (e) => seen.push(e.at) });
    sink.emit(lookup(1));
    sink.emit(lookup(2));
    await Promise.resolve(); // microtasks (the rest of the handler) run first
    expect(seen).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual([1, 2]);
    sink.emit(lookup(3)); // a later batch gets its own turn
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual([1, 2, 3]);
  });
});
