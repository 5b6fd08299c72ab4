// The Runner for WebAssembly actions: argv[0] is a WASI preview 1 module (in
// the input root, or in the CAS by digest), run by Node's built-in node:wasi in
// a worker thread. The runtime is the sandbox: the working directory is the
// only directory the program can reach (preopened read-write as "."), preview
// 1 has no way to open a socket, the memory limit is written into the module,
// and the timeout or kill() terminates the thread.
import { readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { builtinModules } from 'node:module';
import { parseSize } from '../config-load';
import { DIGEST_FUNCTIONS, digestFunctionByName, type BlobDigest } from '../digest';
import { BlobNotFoundError, type BlobStore } from '../store/blob-store';
import { invalidArgument } from '../grpc/status';
import { SPAWN_FAILURE_EXIT_CODE, exitCodeForSignal, type RunExit, type RunRequest, type Runner, type RunnerCapabilities, type RunnerReadiness } from '../execution/runner';
import { ModuleCache } from './module-cache';
import { MAX_WASM32_PAGES, WASM_PAGE_BYTES } from './wasm-binary';
import type { WasiJob } from './wasi-worker';
import { WasiWorkerPool } from './worker-pool';

/** The platform property that sends an action here, and its value. */
export const WASI_PLATFORM = { property: 'OSFamily', value: 'wasi' } as const;
/** The platform property that sets an action's memory limit ("512MiB", bytes…). */
export const MEMORY_PROPERTY = 'memory';
export const DEFAULT_MEMORY_BYTES = 2 ** 30;
/** Larger modules are refused rather than read into memory. */
export const MAX_MODULE_BYTES = 512 * 2 ** 20;

export interface WasiRunnerOptions {
  /** Compiled modules; share one between runners to share compiles. */
  modules?: ModuleCache;
  /** Limit for actions that name none (the `memory` platform property); 1 GiB by default. */
  defaultMemoryBytes?: number;
  /** Lines worth an operator's attention (the worker's own warnings). */
  log?: (line: string) => void;
  /** Worker threads kept for the next run (each costs a V8 isolate's memory); 2 by default. */
  idleThreads?: number;
  /** Where argv[0] = blobs/[{fn}/]{hash}/{size} is read from when the input root has no such file. */
  store?: Pick<BlobStore, 'readAll'>;
}

interface ActiveRun {
  /** Set once the run has a thread. */
  terminate?: () => void;
  killed: boolean;
  timedOut: boolean;
}

export class WasiRunner implements Runner {
  readonly modules: ModuleCache;
  readonly pool: WasiWorkerPool;
  private readonly runs = new Map<string, ActiveRun>();
  private readonly defaultMemoryBytes: number;

  constructor(private readonly opts: WasiRunnerOptions = {}) {
    this.modules = opts.modules ?? new ModuleCache();
    this.defaultMemoryBytes = opts.defaultMemoryBytes ?? DEFAULT_MEMORY_BYTES;
    this.pool = new WasiWorkerPool({ maxIdle: opts.idleThreads ?? 2, notice: (line) => opts.log?.(`kiln: wasi worker: ${line}`) });
  }

  async run(req: RunRequest): Promise<RunExit> {
    if (!req.stdout.path || !req.stderr.path) {
      throw new Error('the WASI runner writes logs straight into files; give it log sinks with a local path');
    }
    if (this.runs.has(req.id)) throw new Error(`action ${req.id} is already running`);
    const maxPages = Math.floor(this.memoryLimit(req) / WASM_PAGE_BYTES);
    const { ready, reason } = this.ready();
    if (!ready) return notStarted(reason!);

    const active: ActiveRun = { killed: false, timedOut: false };
    this.runs.set(req.id, active);
    try {
      const dir = join(req.execRoot, req.workingDirectory);
      const found = await findModule(req.argv[0], dir, req.execRoot, this.opts.store);
      if ('problem' in found) return notStarted(found.problem);
      const loaded = await this.modules.load(found.bytes, maxPages);
      if (loaded.problem !== undefined) return notStarted(`${req.argv[0]} ${loaded.problem}`);
      if (active.killed) return { exitCode: exitCodeForSignal('SIGKILL'), timedOut: false, killed: true };
      const job: WasiJob = { module: loaded.module, args: req.argv, env: req.env, dir, stdoutPath: req.stdout.path, stderrPath: req.stderr.path };
      return await this.runInWorker(job, req, active);
    } finally {
      this.runs.delete(req.id);
    }
  }

  kill(id: string): void {
    const active = this.runs.get(id);
    if (!active) return;
    active.killed = true;
    active.terminate?.();
  }

  ready(): RunnerReadiness {
    return wasiAvailable()
      ? { ready: true }
      : { ready: false, reason: `this Kiln runs on Node ${process.versions.node}, which has no usable node:wasi (Node 20 or newer, Electron 29 or newer)` };
  }

  capabilities(): RunnerCapabilities {
    // The runtime confines file and network access itself; memory is capped in the module.
    return { name: 'wasi', honours: { memoryLimit: true, cpuLimit: false, networkIsolation: true, priority: false } };
  }

  async close(): Promise<void> {
    for (const id of [...this.runs.keys()]) this.kill(id);
    await this.pool.close();
    this.modules.clear();
  }

  /** The `memory` platform property, else the resources hint, else the default; at most wasm32's 4 GiB. */
  private memoryLimit(req: RunRequest): number {
    const asked = req.platform?.[MEMORY_PROPERTY];
    let bytes = req.resources?.memoryBytes ?? this.defaultMemoryBytes;
    if (asked !== undefined) {
      try {
        bytes = parseSize(asked);
      } catch (err) {
        throw invalidArgument(`platform property ${MEMORY_PROPERTY}=${JSON.stringify(asked)}: ${(err as Error).message}`, 'platform');
      }
      if (bytes < WASM_PAGE_BYTES) {
        throw invalidArgument(`platform property ${MEMORY_PROPERTY}=${JSON.stringify(asked)} is less than one WebAssembly page (64KiB)`, 'platform');
      }
    }
    return Math.min(bytes, MAX_WASM32_PAGES * WASM_PAGE_BYTES);
  }

  private async runInWorker(job: WasiJob, req: RunRequest, active: ActiveRun): Promise<RunExit> {
    let timer: NodeJS.Timeout | undefined;
    const { reply, failure } = await this.pool.run(job, (terminate) => {
      active.terminate = terminate;
      if (req.timeoutMs > 0) {
        timer = setTimeout(() => {
          active.timedOut = true;
          terminate();
        }, req.timeoutMs);
      }
    });
    clearTimeout(timer);
    if (reply) return { exitCode: reply.exitCode, timedOut: false, killed: false };
    if (active.timedOut || active.killed) {
      return { exitCode: exitCodeForSignal('SIGKILL'), timedOut: active.timedOut, killed: active.killed && !active.timedOut };
    }
    if ((failure as NodeJS.ErrnoException | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      await req.stderr.write('kiln: the WASI worker ran out of memory\n');
      return { exitCode: exitCodeForSignal('SIGKILL'), timedOut: false, killed: false };
    }
    throw failure ?? new Error('the WASI worker thread ended without an exit code');
  }
}

function notStarted(problem: string): RunExit {
  return { exitCode: SPAWN_FAILURE_EXIT_CODE, timedOut: false, killed: false, spawnError: problem };
}

type Found = { bytes: Uint8Array } | { problem: string };

/**
 * argv[0] as a module file inside the exec root (after symlinks), read whole;
 * failing that, a CAS blob named like a ByteStream read (blobs/[{fn}/]{hash}/{size}),
 * so a tool many actions share need not be in every input root.
 */
async function findModule(argv0: string | undefined, dir: string, execRoot: string, store?: Pick<BlobStore, 'readAll'>): Promise<Found> {
  if (!argv0) return { problem: 'the command has no arguments; argv[0] must name the .wasm module to run' };
  if (isAbsolute(argv0)) return { problem: `${argv0} is an absolute path; argv[0] must be a .wasm module in the input root, relative to the working directory` };
  const found = await moduleInInputRoot(argv0, resolve(dir, argv0), execRoot);
  const blob = casDigest(argv0);
  if (!('missing' in found)) return found;
  if (!blob || !store) return { problem: `no module ${argv0} in the input root (argv[0] must be a .wasm module among the action's inputs, or blobs/{hash}/{size} in the CAS)` };
  if (blob.size > MAX_MODULE_BYTES) return { problem: `${argv0} is larger than the largest module Kiln runs (${MAX_MODULE_BYTES / 2 ** 20} MiB)` };
  try {
    return { bytes: await store.readAll(blob) };
  } catch (err) {
    if (err instanceof BlobNotFoundError) return { problem: `no module ${argv0} in the input root or the CAS (upload the module's blob before executing)` };
    throw err;
  }
}

async function moduleInInputRoot(argv0: string, path: string, execRoot: string): Promise<Found | { missing: true }> {
  try {
    const [real, realRoot] = await Promise.all([realpath(path), realpath(execRoot)]);
    if (!isInside(real, realRoot)) return { problem: `${argv0} is outside the input root; argv[0] must be a .wasm module in the input root` };
    const { size } = await stat(real);
    if (size > MAX_MODULE_BYTES) return { problem: `${argv0} is larger than the largest module Kiln runs (${MAX_MODULE_BYTES / 2 ** 20} MiB)` };
    return { bytes: await readFile(real) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { missing: true };
    if (code === 'EISDIR') return { problem: `${argv0} is a directory, not a .wasm module` };
    return { problem: `cannot read ${argv0}: ${(err as Error).message}` };
  }
}

/** blobs/{hash}/{size} (SHA-256) or blobs/{fn}/{hash}/{size} as a digest, else undefined. */
function casDigest(argv0: string): BlobDigest | undefined {
  const m = /^blobs\/(?:([a-z0-9]+)\/)?([0-9a-f]+)\/(\d+)$/.exec(argv0);
  if (!m) return undefined;
  const fn = m[1] ? digestFunctionByName(m[1]) : DIGEST_FUNCTIONS.sha256;
  const size = Number(m[3]);
  if (!fn || m[2].length !== fn.hexLength || !Number.isSafeInteger(size)) return undefined;
  return { fn: fn.name, hash: m[2], size };
}

function isInside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

/** Whether this Node has node:wasi, without loading it (loading it prints an ExperimentalWarning). */
export function wasiAvailable(): boolean {
  return builtinModules.includes('wasi');
}
