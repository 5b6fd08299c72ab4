// An EventSink decorator for bookkeeping that need not delay an answer: events
// are handed on in one batch after the current turn of the event loop, so a
// service can answer first and let history, metrics and invocations catch up
// while the reply travels (a GetActionResult hit's events cost more CPU than
// the rest of the call). Order is kept; nothing is dropped.
import type { EventSink, KilnEvent } from './event-bus';

export class AfterReplySink implements EventSink {
  private queued: KilnEvent[] = [];

  constructor(private readonly inner: EventSink) {}

  emit(event: KilnEvent): void {
    if (this.queued.push(event) === 1) setImmediate(() => this.flush());
  }

  private flush(): void {
    const batch = this.queued;
    this.queued = [];
    for (const e of batch) this.inner.emit(e);
  }
}
