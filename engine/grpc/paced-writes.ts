// Server-streaming writes that follow the client's pace. grpc-js's call.write()
// only returns false once 16 messages are queued, so a reader that stops taking
// data would otherwise pin 16 messages (and whatever the producer read ahead).
// A message's write callback fires once HTTP/2 flow control has let its bytes
// out, so counting the bytes written but not yet called back bounds what a paused
// reader can pin. The window starts small and grows by what each callback
// confirms (up to a maximum), so a reader that takes data gets a full pipe and
// one that never does pins little.
import type * as grpc from '@grpc/grpc-js';

export class SendWindow<T> {
  private pending = 0;
  private wake: (() => void) | undefined;
  /** Bytes that may be written and not yet sent before send() waits, now. */
  private limit: number;

  constructor(
    private readonly call: grpc.ServerWritableStream<unknown, T>,
    private readonly signal: AbortSignal,
    /** The window to start with. */
    initialBytes: number,
    /** The most the window grows to. */
    private readonly maxBytes: number,
  ) {
    this.limit = initialBytes;
    signal.addEventListener('abort', () => this.wake?.(), { once: true });
  }

  /** The window now (grows as the client takes data). */
  get limitBytes(): number {
    return this.limit;
  }

  /** Writes `message` (`bytes` of payload); resolves when the window has room again or the call is cancelled. */
  async send(message: T, bytes: number): Promise<void> {
    if (this.signal.aborted) return;
    this.pending += bytes;
    this.call.write(message, () => {
      this.pending -= bytes;
      this.limit = Math.min(this.maxBytes, this.limit + bytes);
      this.wake?.();
    });
    while (this.pending >= this.limit && !this.signal.aborted) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
