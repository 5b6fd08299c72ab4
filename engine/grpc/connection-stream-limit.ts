// A cap on concurrent calls of one kind per client connection. Each open call
// holds memory (a buffered message, a file handle) for as long as its client
// lets it sit, so one connection may not open an unbounded number of them.
// The connection is named by its peer address (a TCP connection's port is its own).
import { resourceExhausted } from './status';

export class ConnectionStreamLimit {
  private readonly open = new Map<string, number>();

  constructor(
    /** Most calls one connection may have open at once. */
    readonly perConnection: number,
    /** What the calls are, for the error message ("ByteStream reads"). */
    private readonly what: string,
  ) {}

  /** Counts one more call on `peer`; returns its release, or throws RESOURCE_EXHAUSTED over the cap. */
  acquire(peer: string): () => void {
    const n = this.open.get(peer) ?? 0;
    if (n >= this.perConnection) {
      throw resourceExhausted(
        `too many concurrent ${this.what} on this connection (limit ${this.perConnection}); ` +
          'finish or cancel some before starting more, or spread them over more connections',
      );
    }
    this.open.set(peer, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(peer) ?? 1) - 1;
      if (left > 0) this.open.set(peer, left);
      else this.open.delete(peer);
    };
  }

  /** Calls open on `peer` now (for tests and metrics). */
  openOn(peer: string): number {
    return this.open.get(peer) ?? 0;
  }
}
