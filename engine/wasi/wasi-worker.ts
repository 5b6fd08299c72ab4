// Runs WASI commands inside a worker thread, one at a time, so the runner can
// terminate one at its timeout. Each job gets a fresh instance and WASI
// context; the thread is reused for the next job when the last one ended on
// its own with little memory (see worker-pool.ts). The module arrives
// compiled; stdout and stderr are opened here and handed to WASI as file
// descriptors, so the program's writes land in the log files as it makes them
// (engine/logs follows those files live).
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { WASI } from 'node:wasi';

export interface WasiJob {
  module: WebAssembly.Module;
  args: string[];
  env: Record<string, string>;
  /** The working directory: the only directory the program sees, preopened as ".". */
  dir: string;
  stdoutPath: string;
  stderrPath: string;
}

export interface WasiWorkerReply {
  exitCode: number;
  /** The instance's linear memory at the end, in bytes (0 when it never started). */
  memoryBytes: number;
}

/** What a trap exits with: 128 + SIGABRT, as native programs that abort (and wasmtime on traps) do. */
export const TRAP_EXIT_CODE = 134;

/**
 * An empty regular file, already unlinked, for stdin. Not /dev/null: node:wasi
 * grants character devices socket rights, and sock_accept on one crashes the
 * whole process (seen on Node 20.20), which a program must not be able to do.
 */
function emptyStdin(): number {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-wasi-stdin-'));
  try {
    const path = join(dir, 'empty');
    closeSync(openSync(path, 'wx', 0o400));
    return openSync(path, 'r');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(job: WasiJob): WasiWorkerReply {
  const stdin = emptyStdin();
  const stdout = openSync(job.stdoutPath, 'a');
  const stderr = openSync(job.stderrPath, 'a');
  try {
    const wasi = new WASI({
      version: 'preview1',
      args: job.args,
      env: job.env,
      preopens: { '.': job.dir },
      stdin,
      stdout,
      stderr,
      returnOnExit: true,
    });
    let instance: WebAssembly.Instance | undefined;
    const memoryBytes = () => (instance?.exports.memory as { buffer: ArrayBuffer } | undefined)?.buffer.byteLength ?? 0;
    try {
      instance = new WebAssembly.Instance(job.module, wasi.getImportObject() as Record<string, Record<string, unknown>>);
      const exitCode = wasi.start(instance);
      return { exitCode, memoryBytes: memoryBytes() };
    } catch (err) {
      // A trap (unreachable, out-of-bounds access, stack overflow…): the program failed, not Kiln.
      const e = err as Error;
      writeSync(stderr, `kiln: the WebAssembly module trapped: ${e?.message ?? String(err)}\n`);
      return { exitCode: TRAP_EXIT_CODE, memoryBytes: memoryBytes() };
    }
  } finally {
    for (const fd of [stdin, stdout, stderr]) closeSync(fd);
  }
}

const port = parentPort;
if (port) port.on('message', (job: WasiJob) => port.postMessage(run(job) satisfies WasiWorkerReply));
