// SHA-256 of files being written, computed on a worker thread that reads them back
// from the page cache. Hashing a large upload on the main thread would take as long
// as receiving it; here the main thread only says "bytes up to N are in the file".
// The worker hashes what the file holds, so what is verified is what gets installed.
import { Worker } from 'node:worker_threads';

/** Plain JavaScript, evaluated in the worker: runs the same from sources, dist and a packaged app. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const jobs = new Map();
const buf = Buffer.allocUnsafe(1 << 20);
function drop(id) {
  const job = jobs.get(id);
  jobs.delete(id);
  if (job && job.fd !== undefined) try { closeSync(job.fd); } catch {}
}
parentPort.on('message', (m) => {
  if (m.op === 'open') {
    const job = { fd: undefined, hash: createHash('sha256'), at: 0, error: undefined };
    jobs.set(m.id, job);
    try { job.fd = openSync(m.path, 'r'); } catch (err) { job.error = String(err && err.message || err); }
    return;
  }
  const job = jobs.get(m.id);
  if (m.op === 'advance') {
    if (!job || job.error) return;
    try {
      while (job.at < m.to) {
        const n = readSync(job.fd, buf, 0, Math.min(buf.length, m.to - job.at), job.at);
        if (n === 0) throw new Error('the file is shorter than the bytes written to it');
        job.hash.update(buf.subarray(0, n));
        job.at += n;
      }
    } catch (err) { job.error = String(err && err.message || err); }
  } else if (m.op === 'digest') {
    if (!job) parentPort.postMessage({ id: m.id, error: 'unknown hash job' });
    else if (job.error) parentPort.postMessage({ id: m.id, error: job.error });
    else parentPort.postMessage({ id: m.id, hex: job.hash.digest('hex'), size: job.at });
    drop(m.id);
  } else if (m.op === 'close') {
    drop(m.id);
  }
});
`;

type Reply = { id: number; hex?: string; size?: number; error?: string };

/** One worker thread shared by every upload of a store; started on first use. */
export class FileHashWorker {
  private worker: Worker | undefined;
  private nextId = 1;
  private waiting = new Map<number, { resolve(hex: string): void; reject(err: Error): void; size: number }>();

  /** Starts hashing `path`; feed it with advance() as bytes land. */
  open(path: string): FileHashJob {
    const id = this.nextId++;
    const worker = this.start();
    worker.postMessage({ op: 'open', id, path });
    return new FileHashJob(this, worker, id);
  }

  /** Stops the worker; jobs still open fail. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.failAll(new Error('the hash worker was stopped'));
    await worker?.terminate();
  }

  /** @internal */
  digest(worker: Worker, id: number, size: number): Promise<string> {
    if (worker !== this.worker) return Promise.reject(new Error('the hash worker stopped while the upload was open'));
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, size });
      worker.ref(); // Someone waits for an answer: keep the process up for it.
      worker.postMessage({ op: 'digest', id });
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref(); // An idle hasher never keeps the process alive.
    worker.on('message', (r: Reply) => {
      const w = this.waiting.get(r.id);
      if (!w) return;
      this.waiting.delete(r.id);
      if (this.waiting.size === 0) worker.unref();
      if (r.error !== undefined) w.reject(new Error(`hashing the upload failed: ${r.error}`));
      else if (r.size !== w.size) w.reject(new Error(`hashed ${r.size} bytes of an upload of ${w.size}`));
      else w.resolve(r.hex!);
    });
    const died = (err: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.failAll(err);
    };
    worker.on('error', died);
    worker.on('exit', (code) => died(new Error(`the hash worker exited (code ${code})`)));
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error): void {
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}

/**
 * Bytes the file must grow by before the worker is told. Each message costs a
 * postMessage on the main thread and a read on the worker, and uploads arrive in
 * 64 KiB messages; the worker still keeps up, and digest() sends the rest.
 */
export const ADVANCE_STEP_BYTES = 1024 * 1024;

/** The hash of one file as it grows. */
export class FileHashJob {
  /** Bytes the worker has been told about. */
  private hashedTo = 0;
  /** Bytes known to be final (told or not). */
  private finalTo = 0;
  private closed = false;

  constructor(
    private readonly owner: FileHashWorker,
    private readonly worker: Worker,
    private readonly id: number,
  ) {}

  /** The first `size` bytes of the file are final: hash up to there (told in steps of ADVANCE_STEP_BYTES). */
  advance(size: number): void {
    if (this.closed || size <= this.finalTo) return;
    this.finalTo = size;
    if (size - this.hashedTo >= ADVANCE_STEP_BYTES) this.tell();
  }

  /** Lower-case hex of the first `size` bytes (everything advanced so far); ends the job. */
  digest(size: number): Promise<string> {
    this.advance(size);
    if (!this.closed && this.finalTo > this.hashedTo) this.tell();
    this.closed = true;
    return this.owner.digest(this.worker, this.id, size);
  }

  private tell(): void {
    this.hashedTo = this.finalTo;
    this.worker.postMessage({ op: 'advance', id: this.id, to: this.finalTo });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.postMessage({ op: 'close', id: this.id });
  }
}
