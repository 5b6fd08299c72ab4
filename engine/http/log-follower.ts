// Streams one action log into an SSE connection as `log` events.
//
// Lag policy: the follower reads the file only when the socket has drained, so
// memory stays bounded however slow the client is. If the client falls more than
// `maxLagBytes` behind the end of the file, the follower jumps ahead to the last
// `resumeTailBytes` and sends a `log-gap` event naming the skipped range; the
// client can fetch it from /api/actions/{id}/{stream} if it wants.
import { StringDecoder } from 'node:string_decoder';
import type { LogStreamName } from '../common/action-vocabulary';
import { LogNotFoundError, type LogHub } from '../logs/log-hub';
import type { SseConnection } from './sse';

export interface FollowLimits {
  maxLagBytes: number;
  resumeTailBytes: number;
}

export const DEFAULT_FOLLOW_LIMITS: FollowLimits = { maxLagBytes: 1024 ** 2, resumeTailBytes: 16 * 1024 };

export async function followLog(
  hub: LogHub,
  conn: SseConnection,
  id: string,
  stream: LogStreamName,
  limits: FollowLimits = DEFAULT_FOLLOW_LIMITS,
): Promise<void> {
  let offset = 0;
  let decoder = new StringDecoder('utf8');
  const skipIfBehind = async (): Promise<boolean> => {
    const size = (await hub.info(id, stream))?.size ?? 0;
    if (size - offset <= limits.maxLagBytes) return false;
    const to = size - Math.min(limits.resumeTailBytes, limits.maxLagBytes);
    conn.send({ event: 'log-gap', data: { id, stream, from: offset, to } });
    offset = to;
    decoder = new StringDecoder('utf8');
    return true;
  };
  try {
    await skipIfBehind();
    restart: while (!conn.closed) {
      for await (const chunk of hub.read(id, stream, { offset, signal: conn.signal })) {
        conn.send({ event: 'log', data: { id, stream, offset: chunk.offset, data: decoder.write(chunk.data) } });
        offset = chunk.offset + chunk.data.length;
        await conn.drained();
        if (conn.closed) return;
        if (await skipIfBehind()) continue restart;
      }
      break;
    }
    if (!conn.closed) {
      const rest = decoder.end();
      if (rest) conn.send({ event: 'log', data: { id, stream, offset, data: rest } });
      conn.send({ event: 'log-end', data: { id, stream, bytes: offset } });
    }
  } catch (err) {
    if (err instanceof LogNotFoundError) conn.send({ event: 'log-end', data: { id, stream, bytes: 0 } });
    else console.error(`kiln: following ${stream} of ${id} failed:`, err);
  }
}
