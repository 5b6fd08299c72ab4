// Threads for WASI runs. Starting a worker thread costs tens of milliseconds
// of CPU (a new V8 isolate and Node environment), several times what a small
// module's run costs, so a thread whose run ended on its own is kept idle for
// the next one. A thread that was terminated (timeout, kill) or ended with a
// large memory is never reused: an idle thread does not collect garbage, and
// the memory of its last instance would stay with it.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { WasiJob, WasiWorkerReply } from './wasi-worker';

export interface PoolRun {
  /** The thread's answer; undefined when it ended without one (terminated, or died: see `failure`). */
  reply?: WasiWorkerReply;
  failure?: Error;
}

export interface WorkerPoolOptions {
  /** Idle threads kept; 0 starts a thread per run. */
  maxIdle: number;
  /** A thread is reused only when its last instance's memory was at most this. */
  maxReusableMemoryBytes?: number;
  /** Lines a thread printed that are worth an operator's attention. */
  notice?: (line: string) => void;
}

export class WasiWorkerPool {
  private readonly idle: Worker[] = [];
  private readonly busy = new Set<Worker>();
  private started = 0;
  private closed = false;

  constructor(private readonly opts: WorkerPoolOptions) {}

  /** Threads started so far (tests check reuse). */
  get threadsStarted(): number {
    return this.started;
  }

  /** Runs the job; `onStart` gets the function that terminates it. */
  run(job: WasiJob, onStart: (terminate: () => void) => void): Promise<PoolRun> {
    const worker = this.idle.pop() ?? this.spawn();
    worker.ref();
    this.busy.add(worker);
    return new Promise<PoolRun>((resolve) => {
      let failure: Error | undefined;
      let finished = false;
      const done = (result: PoolRun) => {
        finished = true;
        worker.off('message', onMessage).off('error', onError).off('exit', onExit);
        this.busy.delete(worker);
        resolve(result);
      };
      const onMessage = (reply: WasiWorkerReply) => {
        done({ reply });
        if (this.reusable(reply)) {
          worker.unref();
          this.idle.push(worker);
        } else {
          void worker.terminate();
        }
      };
      const onError = (err: Error) => (failure = err);
      const onExit = () => done({ failure });
      worker.on('message', onMessage).on('error', onError).on('exit', onExit);
      // Once the run is over the thread may already serve another run: a late kill must not reach it.
      onStart(() => {
        if (!finished) void worker.terminate();
      });
      worker.postMessage(job);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.idle, ...this.busy];
    this.idle.length = 0;
    await Promise.all(all.map((w) => w.terminate()));
  }

  private reusable(reply: WasiWorkerReply): boolean {
    const maxMemory = this.opts.maxReusableMemoryBytes ?? 64 * 2 ** 20;
    return !this.closed && this.idle.length < this.opts.maxIdle && reply.memoryBytes <= maxMemory;
  }

  private spawn(): Worker {
    this.started++;
    const worker = startWorker();
    // The thread's own stdout/stderr carry only Node's notices (node:wasi's
    // ExperimentalWarning, once per thread): programs write to their log files.
    worker.stdout.resume();
    worker.stderr.setEncoding('utf8').on('data', (text: string) => {
      for (const line of text.split('\n')) if (line.trim() && !/ExperimentalWarning|--trace-warnings/.test(line)) this.opts.notice?.(line);
    });
    // Errors of a run are its own listener's; one while idle must not be an unhandled 'error' event.
    worker.on('error', () => {});
    // A thread that ends while idle leaves the pool.
    worker.on('exit', () => {
      const i = this.idle.indexOf(worker);
      if (i >= 0) this.idle.splice(i, 1);
    });
    return worker;
  }
}

/** The worker thread: compiled JS normally, the TypeScript source through tsx in tests. */
function startWorker(): Worker {
  const options = {
    stdout: true,
    stderr: true,
    // The thread's JS does almost nothing; a program's memory is its module's, capped by the runner.
    resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16 },
  };
  const js = join(__dirname, 'wasi-worker.js');
  if (__filename.endsWith('.ts') || !existsSync(js)) {
    const bootstrap = `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(join(__dirname, 'wasi-worker.ts'))});`;
    return new Worker(bootstrap, { ...options, eval: true });
  }
  return new Worker(js, options);
}
