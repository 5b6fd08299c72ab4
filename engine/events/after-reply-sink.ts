// An EventSink decorator for bookkeeping that need not delay an answer: events
// are handed on in one batch after the current turn of the event loop, so a
// service can answer first and let history, metrics and invocations catch up
// while the reply travels (a GetActionResult hit's events cost more CPU than
// the rest of the call). Events that take work to build (an id, a decoded
// header) can be given as a function, called only then. Order is kept;
// nothing is dropped.
import type { EventSink, KilnEvent } from './event-bus';

type Pending = KilnEvent | (() => KilnEvent[]);

export class AfterReplySink implements EventSink {
  private queued: Pending[] = [];

  constructor(private readonly inner: EventSink) {}

  emit(event: KilnEvent): void {
    this.enqueue(event);
  }

  /** Events built by `make` after the current turn, in their place among the others. */
  emitLater(make: () => KilnEvent[]): void {
    this.enqueue(make);
  }

  private enqueue(p: Pending): void {
    if (this.queued.push(p) === 1) setImmediate(() => this.flush());
  }

  private flush(): void {
    const batch = this.queued;
    this.queued = [];
    for (const p of batch) {
      if (typeof p !== 'function') this.inner.emit(p);
      else for (const e of p()) this.inner.emit(e);
    }
  }
}
