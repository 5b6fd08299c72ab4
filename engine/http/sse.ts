// One Server-Sent Events connection with bounded buffering.
//
// Slow-reader policy:
// - Log chunks are pulled from the log files only when the socket has drained,
//   so a slow client never makes the server buffer a log (see log-follower.ts,
//   which skips ahead with a `log-gap` event when the client lags too far).
// - Snapshot-like events (metrics ticks, heartbeats) are dropped while more than
//   `softBufferBytes` wait in the socket: the next tick supersedes them.
// - Any other event that would grow the buffer past `maxBufferedBytes` closes
//   the connection; EventSource reconnects and the client refetches state.
import type { ServerResponse } from 'node:http';
import type { SseEvent } from '../common/api-types';

export interface SseLimits {
  softBufferBytes: number;
  maxBufferedBytes: number;
  heartbeatMs: number;
}

export const DEFAULT_SSE_LIMITS: SseLimits = {
  softBufferBytes: 256 * 1024,
  maxBufferedBytes: 8 * 1024 ** 2,
  heartbeatMs: 15_000,
};

export class SseConnection {
  private readonly abort = new AbortController();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly res: ServerResponse,
    private readonly limits: SseLimits = DEFAULT_SSE_LIMITS,
  ) {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    // Tell EventSource how long to wait before reconnecting.
    res.write('retry: 2000\n\n');
    res.on('close', () => this.close());
    res.on('error', () => this.close());
    this.heartbeat = setInterval(() => this.comment('hb'), limits.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Aborts when the client goes away or the connection is closed. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get closed(): boolean {
    return this.abort.signal.aborted;
  }

  /** Sends an event that must not be lost; closes the connection if the client is hopelessly behind. */
  send(e: SseEvent): void {
    if (this.closed) return;
    const frame = `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;
    if (this.res.writableLength + frame.length > this.limits.maxBufferedBytes) {
      this.close();
      return;
    }
    this.res.write(frame);
  }

  /** Sends an event that a later one supersedes; dropped while the client is behind. */
  sendDroppable(e: SseEvent): void {
    if (this.closed || this.res.writableLength > this.limits.softBufferBytes) return;
    this.send(e);
  }

  /** Resolves once the socket has taken what was written (or the connection closed). */
  drained(): Promise<void> {
    if (this.closed || !this.res.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.signal.removeEventListener('abort', done);
        resolve();
      };
      this.res.on('drain', done);
      this.signal.addEventListener('abort', done, { once: true });
    });
  }

  close(): void {
    if (this.closed) return;
    this.abort.abort();
    clearInterval(this.heartbeat);
    if (!this.res.writableEnded) this.res.end();
    // A client that stopped reading would keep the socket (and its buffer) alive.
    if (this.res.writableLength > 0) this.res.destroy();
  }

  private comment(text: string): void {
    if (this.closed || this.res.writableLength > this.limits.softBufferBytes) return;
    this.res.write(`: ${text}\n\n`);
  }
}
