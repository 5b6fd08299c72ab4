// Removes exec roots on a worker thread with synchronous calls. On the main
// thread each call through fs/promises costs two to three times its system
// call in CPU (util/sync-batches.ts), and the same calls made synchronously
// there block the event loop for as long as the file system takes: rmdir of
// an exec root's folders took ~0.6 ms each on a busy disk, several
// milliseconds per action. Here the main thread only sends a path and hears
// back once; the worker walks the tree as remove-tree.ts does.
import { Worker } from 'node:worker_threads';
import { removeTree } from './remove-tree';

/** Plain JavaScript, evaluated in the worker: runs the same from sources, dist and a packaged app. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { chmodSync, readdirSync, rmSync, rmdirSync, unlinkSync } = require('node:fs');
const SLASH = Buffer.from('/');
// Names as bytes, symlinks unlinked and never followed.
function removeDir(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
    const path = Buffer.concat([dir, SLASH, e.name]);
    if (e.isDirectory()) removeDir(path);
    else unlinkSync(path);
  }
  rmdirSync(dir);
}
function makeWritable(dir) {
  try {
    chmodSync(dir, 0o755);
    for (const e of readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
      if (e.isDirectory()) makeWritable(Buffer.concat([dir, SLASH, e.name]));
    }
  } catch {}
}
parentPort.on('message', ({ id, path }) => {
  let error;
  try {
    removeDir(Buffer.from(path));
  } catch {
    // Whatever stopped the walk (missing, not a folder, not writable): the thorough way.
    try {
      makeWritable(Buffer.from(path));
      rmSync(path, { recursive: true, force: true });
    } catch (err) {
      error = String((err && err.message) || err);
    }
  }
  parentPort.postMessage({ id, error });
});
`;

/** One worker thread shared by an executor's actions; started by warm() (the executor calls it for each real action). */
export class TreeRemover {
  private worker: Worker | undefined;
  /** Resolves once the thread runs JavaScript; until then removals do not wait for it. */
  private online: Promise<void> | undefined;
  private isOnline = false;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(): void; reject(err: Error): void }>();

  /** @param fallback removes a tree on this thread while the worker is still starting. */
  constructor(private readonly fallback: (path: string) => Promise<void> = removeTree) {}

  /**
   * rm -rf of `path` on the worker; rejects if the worker cannot (the caller then removes it itself).
   * Until warm() has started the thread, and while it is starting (~10 ms on a quiet machine,
   * 100 ms and more on a busy one, longer than a small action), the tree is removed here
   * instead: the first action's answer must not wait for a thread to boot, and a removal
   * alone (the warm-up's at start) does not make an idle engine hold the thread.
   */
  remove(path: string): Promise<void> {
    const worker = this.worker;
    if (!worker || !this.isOnline) return this.fallback(path);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.ref(); // Someone waits for an answer: keep the process up for it.
      worker.postMessage({ id, path });
    });
  }

  /** Whether its thread has been started (by warm() or a removal) and not closed. */
  get started(): boolean {
    return this.worker !== undefined;
  }

  /** Starts the thread ahead of the first removal; resolves once it runs (or has failed to start). */
  warm(): Promise<void> {
    this.start();
    return this.online ?? Promise.resolve();
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.isOnline = false;
    this.failAll(new Error('the tree remover was stopped'));
    await worker?.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref(); // An idle remover never keeps the process alive.
    this.isOnline = false;
    this.online = new Promise<void>((resolve) => {
      worker.once('online', () => {
        if (this.worker === worker) this.isOnline = true;
        resolve();
      });
      worker.once('exit', () => resolve());
    });
    worker.on('message', (r: { id: number; error?: string }) => {
      const w = this.waiting.get(r.id);
      if (!w) return;
      this.waiting.delete(r.id);
      if (this.waiting.size === 0) worker.unref();
      if (r.error !== undefined) w.reject(new Error(r.error));
      else w.resolve();
    });
    const died = (err: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.isOnline = false;
      this.failAll(err);
    };
    worker.on('error', died);
    worker.on('exit', (code) => died(new Error(`the tree remover's thread exited (code ${code})`)));
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error): void {
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}
