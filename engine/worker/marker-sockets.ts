// Markers (process-markers.ts) made of connected Unix sockets instead of files.
// The action gets one end as fd 3; the launcher keeps the other. When every
// process holding the action's end has closed it, the launcher's end reads
// EOF: the common case (nothing escaped) is then known without sweeping /proc,
// which cost ~100 stat calls per action on a busy machine. Only when the end is
// still held is the sweep needed, and the socket's identity is what it looks for.
// No file is created, opened or unlinked per action. Linux only: elsewhere there
// is no sweep, so no marker either.
import { readSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { fdIdentity, type FileIdentity } from './process-markers';

export interface SocketMarker {
  /** The descriptor to hand the action as fd 3; close it (releaseChildEnd) once the action holds it. */
  readonly childFd: number;
  /** The action's end: what a sweep looks for in /proc. */
  readonly id: FileIdentity;
  /** Closes the launcher's copy of the action's end. */
  releaseChildEnd(): void;
  /**
   * True when some process still holds the action's end. The kernel closes a
   * process's descriptors before its parent hears of its exit, so once the
   * leader's exit is seen, a held end means something outlived it.
   */
  stillHeld(): boolean;
  /** Closes everything the launcher holds of the marker. */
  close(): void;
}

/** Pairs made ahead of need (one at a time), so a burst of spawns (Bazel sends --jobs at once) does not wait for connections. */
const POOL = 32;

/**
 * Reads of what an action wrote to fd 3 before its marker counts as held: 16 × 64 KiB,
 * more than a socket's buffer holds, so only a writer still writing gets that far.
 */
const MAX_DRAIN_READS = 16;
const drain = Buffer.allocUnsafe(64 * 1024);

function fdOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('a marker socket has no descriptor');
  return fd;
}

class Pair implements SocketMarker {
  readonly childFd: number;
  readonly id: FileIdentity;
  private childOpen = true;

  constructor(
    private readonly child: Socket,
    private readonly own: Socket,
  ) {
    this.childFd = fdOf(child);
    this.id = fdIdentity(this.childFd);
    // Neither end is read through the event loop: stillHeld() reads the launcher's end directly.
    child.on('error', () => {});
    own.on('error', () => {});
  }

  releaseChildEnd(): void {
    if (!this.childOpen) return;
    this.childOpen = false;
    this.child.destroy();
  }

  stillHeld(): boolean {
    // The launcher's end is non-blocking: 0 bytes is EOF (nobody holds the other end), EAGAIN is "held".
    // Whatever the action wrote to fd 3 is read and dropped on the way; a writer that keeps
    // the buffer full is a holder, and is not waited for.
    for (let reads = 0; reads < MAX_DRAIN_READS; reads++) {
      try {
        if (readSync(fdOf(this.own), drain, 0, drain.length, null) === 0) return false;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return true;
        return false; // ECONNRESET and the like: the other end is gone
      }
    }
    return true;
  }

  close(): void {
    this.releaseChildEnd();
    this.own.destroy();
  }
}

/**
 * Makes marker pairs through a listening socket in the abstract namespace
 * (nothing on disk; gone with the process). One connection at a time, so the
 * accepted end always belongs to the last connection made.
 */
export class SocketMarkers {
  private server?: Server;
  private path = '';
  private listening?: Promise<void>;
  private readonly ready: Pair[] = [];
  private filling = false;
  private waiters: Array<(p: Pair | undefined) => void> = [];
  private broken = false;

  static supported(): boolean {
    return process.platform === 'linux';
  }

  /** A fresh marker; undefined when none can be made (the action then runs without one). */
  take(): Promise<SocketMarker | undefined> {
    if (this.broken || !SocketMarkers.supported()) return Promise.resolve(undefined);
    const pair = this.ready.shift();
    this.fill();
    if (pair) return Promise.resolve(pair);
    return new Promise<Pair | undefined>((resolve) => {
      this.waiters.push(resolve);
      this.fill();
    });
  }

  /** Starts making pairs now, so the first action does not wait. */
  warm(): void {
    if (SocketMarkers.supported()) this.fill();
  }

  close(): void {
    this.broken = true;
    for (const p of this.ready.splice(0)) p.close();
    for (const w of this.waiters.splice(0)) w(undefined);
    this.server?.close();
  }

  private fill(): void {
    if (this.filling || this.broken) return;
    if (this.ready.length >= POOL && this.waiters.length === 0) return;
    this.filling = true;
    this.makePair().then(
      (pair) => {
        this.filling = false;
        const waiter = this.waiters.shift();
        if (this.broken) pair.close();
        else if (waiter) waiter(pair);
        else this.ready.push(pair);
        this.fill();
      },
      () => {
        // No markers here (no abstract sockets?): actions still run, and the group kill still applies.
        this.filling = false;
        this.broken = true;
        for (const w of this.waiters.splice(0)) w(undefined);
      },
    );
  }

  private listen(): Promise<void> {
    this.listening ??= new Promise<void>((resolve, reject) => {
      // pauseOnConnect: the accepted end is never read by the event loop (see stillHeld).
      const server = createServer({ pauseOnConnect: true });
      this.server = server;
      server.once('error', reject);
      this.path = `\0kiln-launcher-${process.pid}-${Math.random().toString(36).slice(2)}`;
      server.listen(this.path, () => resolve());
    });
    return this.listening;
  }

  private async makePair(): Promise<Pair> {
    await this.listen();
    const server = this.server!;
    return new Promise<Pair>((resolve, reject) => {
      const child = connect(this.path);
      const onError = (err: Error) => {
        server.off('connection', onConnection);
        child.destroy();
        reject(err);
      };
      const onConnection = (own: Socket) => {
        child.off('error', onError);
        const finish = () => {
          try {
            resolve(new Pair(child, own));
          } catch (err) {
            child.destroy();
            own.destroy();
            reject(err as Error);
          }
        };
        // The connecting side may hear of its connection after the server does.
        if (child.connecting) child.once('connect', finish);
        else finish();
      };
      server.once('connection', onConnection);
      child.once('error', onError);
      // The action's end is never read by the launcher either.
      child.pause();
    });
  }
}
