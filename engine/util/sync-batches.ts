// Small file system calls done synchronously, in bounded batches. On this
// kind of machine a metadata call through fs/promises (mkdir, rmdir, unlink,
// lchown, readdir of a small folder) costs 40–75 µs of CPU: the promise, the
// hop to libuv's thread pool, waking a pool thread and coming back; the same
// call made synchronously costs the system call alone, 14–22 µs (measured
// with 8,000 mkdir+rmdir, three alternating rounds). An exec root's folders
// are a handful of such calls per action, so they are made synchronously,
// and the event loop gets a turn every `perTurn` calls so that a huge tree
// never holds it for long.

/** Calls made between two turns of the event loop: a few milliseconds at most. */
export const SYNC_CALLS_PER_TURN = 64;

/** Counts synchronous calls and yields to the event loop every `perTurn` of them. */
export class SyncBudget {
  private calls = 0;

  constructor(private readonly perTurn = SYNC_CALLS_PER_TURN) {}

  /** Records one call made; resolves at once, or after a turn of the event loop when the batch is used up. */
  spent(): Promise<void> | undefined {
    if (++this.calls < this.perTurn) return undefined;
    this.calls = 0;
    return new Promise((resolve) => setImmediate(resolve));
  }
}
