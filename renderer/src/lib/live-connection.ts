// The dashboard's single Server-Sent Events connection. EventSource retries on
// its own at a fixed pace; we take over instead: close on error, reconnect with
// jittered exponential backoff, and reconnect deliberately when the set of
// followed action logs changes (it is part of the URL).
// With a token, EventSource can't send it (no headers), so each attempt first
// fetches a single-use ticket (POST /api/session) and puts that in the URL; the
// token itself never appears in a URL.
import type { SseEvent, SseEventName } from '../../../engine/common/api-types';
import { backoffDelay } from './backoff';

/** The subset of EventSource we use, so tests can supply a fake. */
export interface EventSourceLike {
  onopen: ((ev: Event) => unknown) | null;
  onerror: ((ev: Event) => unknown) | null;
  addEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  close(): void;
}

export interface LiveConnectionOptions {
  url: (follow: readonly string[], ticket?: string) => string;
  /**
   * A fresh event ticket for each attempt, or undefined to connect without one
   * (no token, or an engine without tickets). A rejection counts as a failed attempt.
   */
  ticket?: () => Promise<string | undefined>;
  open: (url: string) => EventSourceLike;
  onEvent: (e: SseEvent) => void;
  /** Connected (again): a good moment to re-sync state that events may have missed. */
  onUp: () => void;
  /** Lost; `retryInMs` until the next attempt. */
  onDown: (retryInMs: number) => void;
  random?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
}

const EVENT_NAMES: SseEventName[] = ['metrics', 'action', 'log', 'log-gap', 'log-end', 'execution', 'farm', 'health'];

export class LiveConnection {
  private source: EventSourceLike | undefined;
  private follow: string[] = [];
  private attempt = 0;
  private timer: unknown;
  private stopped = true;
  /** Bumped by every connect/stop, so a ticket that arrives late is not used for a stale attempt. */
  private generation = 0;

  constructor(private readonly o: LiveConnectionOptions) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    this.cancelTimer();
    this.source?.close();
    this.source = undefined;
  }

  /** Changes which actions' logs stream; reconnects only if the set changed. */
  setFollow(ids: readonly string[]): void {
    const next = [...new Set(ids)].sort();
    if (next.join(',') === this.follow.join(',')) return;
    this.follow = next;
    if (!this.stopped) {
      this.cancelTimer();
      this.connect();
    }
  }

  private connect(): void {
    this.source?.close();
    this.source = undefined;
    const gen = ++this.generation;
    if (!this.o.ticket) return this.openWith(undefined);
    this.o.ticket().then(
      (ticket) => {
        if (gen === this.generation && !this.stopped) this.openWith(ticket);
      },
      () => {
        if (gen === this.generation && !this.stopped) this.retryLater();
      },
    );
  }

  private openWith(ticket: string | undefined): void {
    const src = this.o.open(this.o.url(this.follow, ticket));
    this.source = src;
    src.onopen = () => {
      if (this.source !== src) return;
      this.attempt = 0;
      this.o.onUp();
    };
    src.onerror = () => {
      if (this.source !== src) return;
      src.close();
      this.source = undefined;
      this.retryLater();
    };
    for (const name of EVENT_NAMES) {
      src.addEventListener(name, (ev) => {
        if (this.source !== src) return;
        let data: unknown;
        try {
          data = JSON.parse(ev.data);
        } catch {
          return; // a malformed event is dropped, not fatal
        }
        this.o.onEvent({ event: name, data } as SseEvent);
      });
    }
  }

  private retryLater(): void {
    const delay = backoffDelay(this.attempt++, { random: this.o.random });
    this.o.onDown(delay);
    this.timer = (this.o.setTimer ?? setTimeout)(() => {
      this.timer = undefined;
      if (!this.stopped) this.connect();
    }, delay);
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) (this.o.clearTimer ?? clearTimeout)(this.timer as ReturnType<typeof setTimeout>);
    this.timer = undefined;
  }
}
