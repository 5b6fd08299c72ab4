// Server-streaming writes that follow the client's pace. grpc-js's call.write()
// only returns false once 16 messages are queued, so a reader that stops taking
// data would otherwise pin 16 messages (and whatever the producer read ahead).
// Waiting for each message's write callback (which fires once HTTP/2 flow control
// has let the bytes out) keeps a paused reader's cost at one message.
import type * as grpc from '@grpc/grpc-js';

/**
 * Writes `message` and resolves once the transport has sent it, or once the call
 * is cancelled (grpc-js never calls back for a cancelled call).
 */
export function writeWhenSent<T>(call: grpc.ServerWritableStream<unknown, T>, message: T, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    call.write(message, done);
  });
}
