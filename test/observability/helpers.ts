// Shared test helpers: temp dirs, polling waits and a small SSE client.
import { mkdtempSync, rmSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-obs-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Polls `pred` until it is truthy; generous timeout because the machine is shared. */
export async function waitFor<T>(pred: () => T | Promise<T>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface SseMessage {
  event: string;
  data: any;
}

/** An EventSource-like client that records every event; `res` can be paused to play a slow reader. */
export class SseClient {
  readonly events: SseMessage[] = [];
  res!: IncomingMessage;
  ended = false;
  private buffer = '';

  static async connect(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const c = new SseClient();
    await new Promise<void>((resolve, reject) => {
      const req = request(url, { headers: { Accept: 'text/event-stream', ...headers } }, (res) => {
        c.res = res;
        res.setEncoding('utf8');
        res.on('data', (s: string) => c.feed(s));
        res.on('end', () => (c.ended = true));
        res.on('close', () => (c.ended = true));
        resolve();
      });
      req.on('error', reject);
      req.end();
    });
    return c;
  }

  of(event: string): any[] {
    return this.events.filter((e) => e.event === event).map((e) => e.data);
  }

  waitFor(pred: (e: SseMessage) => boolean, what: string): Promise<SseMessage> {
    return waitFor(() => this.events.find(pred), what);
  }

  close(): void {
    this.res?.destroy();
  }

  private feed(s: string): void {
    this.buffer += s;
    let i: number;
    while ((i = this.buffer.indexOf('\n\n')) >= 0) {
      const frame = this.buffer.slice(0, i);
      this.buffer = this.buffer.slice(i + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length) this.events.push({ event, data: JSON.parse(data.join('\n')) });
    }
  }
}
