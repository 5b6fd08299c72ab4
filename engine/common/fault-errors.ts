// Errors that lower layers raise and the gRPC layer must answer precisely, and
// the bound on what a status message may carry. They live here, below both the
// store and engine/grpc, so neither has to import the other to agree on them.

/**
 * The store cannot take a blob: the budget is full of pinned blobs, the blob is
 * larger than the whole budget, or the disk itself is full. Answered
 * RESOURCE_EXHAUSTED; the message says what is full and what to do.
 */
export class StoreFullError extends Error {}

/**
 * Longest status message (in characters) Kiln sends. Messages echo client input
 * (names, paths, digests); a status of ~60 KB never reached the client and stalled
 * its connection, because it travels in an HTTP/2 trailer. grpc-js percent-encodes
 * non-ASCII bytes, so 1024 characters stay well under the trailer limit.
 */
export const MAX_STATUS_MESSAGE_CHARS = 1024;

/** `text` cut to `max` characters (never inside a surrogate pair), saying how much was left out. */
export function boundedMessage(text: string, max = MAX_STATUS_MESSAGE_CHARS): string {
  if (text.length <= max) return text;
  let cut = max;
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut--; // a high surrogate without its pair
  return `${text.slice(0, cut)}… (${text.length - cut} more characters not shown)`;
}

/** An errno a request can cause, and the status and wording that tell the client what happened. */
export interface ErrnoVerdict {
  kind: 'resource-exhausted' | 'invalid-argument';
  message: string;
}

/**
 * What a file system error means for the client, if it is one a client can
 * cause. The message never contains the server's paths.
 */
export function errnoVerdict(err: unknown): ErrnoVerdict | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return {
        kind: 'resource-exhausted',
        message: "the server's disk is full (no space left to write); free disk space or lower Kiln's cache size, then retry",
      };
    case 'ENAMETOOLONG':
      return {
        kind: 'invalid-argument',
        message: 'a name or path in the request is longer than the file system allows (255 bytes per name, 4096 per path)',
      };
    default:
      return undefined;
  }
}

/** An error's message with the server paths an errno error carries replaced by its code and system call. */
export function messageWithoutPaths(err: unknown): string {
  const e = err as (NodeJS.ErrnoException & { dest?: string }) | undefined;
  if (e && typeof e.code === 'string' && (e.path !== undefined || e.dest !== undefined)) {
    return `${e.code} in ${e.syscall ?? 'a file system call'}`;
  }
  return err instanceof Error ? err.message : String(err);
}
