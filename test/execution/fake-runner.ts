// A Runner without processes: argv[0] names one of a few built-in programs
// written in JS, so the executor can be tested (and a runner registered by
// configuration) without the launcher. Output goes through the sinks' write(),
// the path a remote or in-process runner would take.
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SPAWN_FAILURE_EXIT_CODE, exitCodeForSignal, type RunExit, type RunRequest, type Runner, type RunnerCapabilities, type RunnerReadiness } from '../../engine/execution/runner';

type Program = (args: string[], req: RunRequest, stopped: Promise<void>) => Promise<number>;

const PROGRAMS: Record<string, Program> = {
  exit: async ([code]) => Number(code),
  out: async ([text], req) => (await req.stdout.write(text), 0),
  err: async ([text], req) => (await req.stderr.write(text), 0),
  env: async (_, req) => (await req.stdout.write(Object.entries(req.env).map(([k, v]) => `${k}=${v}\n`).join('')), 0),
  pwd: async (_, req) => (await req.stdout.write(`${join(req.execRoot, req.workingDirectory)}\n`), 0),
  write: async ([path, text], req) => {
    const abs = join(req.execRoot, req.workingDirectory, path);
    await mkdir(dirname(abs), { recursive: true });
    await writeFile(abs, text);
    return 0;
  },
  symlink: async ([target, path], req) => (await symlink(target, join(req.execRoot, req.workingDirectory, path)), 0),
  sleep: async ([seconds], _req, stopped) => {
    await Promise.race([new Promise((r) => setTimeout(r, Number(seconds) * 1000)), stopped]);
    return 0;
  },
};

export class FakeRunner implements Runner {
  /** Every request it was given, in order. */
  readonly requests: RunRequest[] = [];
  private readonly running = new Map<string, () => void>();
  closed = false;

  async run(req: RunRequest): Promise<RunExit> {
    this.requests.push(req);
    const program = PROGRAMS[req.argv[0]];
    if (!program) {
      return { exitCode: SPAWN_FAILURE_EXIT_CODE, timedOut: false, killed: false, spawnError: `no such program: ${req.argv[0]}` };
    }
    let stop!: () => void;
    let why: 'timeout' | 'kill' | undefined;
    const stopped = new Promise<void>((r) => (stop = r));
    this.running.set(req.id, () => {
      why ??= 'kill';
      stop();
    });
    const timer = req.timeoutMs > 0 ? setTimeout(() => ((why ??= 'timeout'), stop()), req.timeoutMs) : undefined;
    try {
      const code = await program(req.argv.slice(1), req, stopped);
      if (why) return { exitCode: exitCodeForSignal('SIGTERM'), signal: 'SIGTERM', timedOut: why === 'timeout', killed: why === 'kill' };
      return { exitCode: code, timedOut: false, killed: false };
    } finally {
      clearTimeout(timer);
      this.running.delete(req.id);
    }
  }

  kill(id: string): void {
    this.running.get(id)?.();
  }

  ready(): RunnerReadiness {
    return this.closed ? { ready: false, reason: 'the fake runner is closed' } : { ready: true };
  }

  capabilities(): RunnerCapabilities {
    return { name: 'fake', honours: { memoryLimit: false, cpuLimit: false, networkIsolation: false, priority: false } };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** The same logical programs as real processes, for running one suite against the ProcessRunner. */
export function asProcessArgv(argv: string[]): string[] {
  const [name, ...args] = argv;
  switch (name) {
    case 'exit':
      return ['/bin/sh', '-c', `exit ${args[0]}`];
    case 'out':
      return ['/bin/sh', '-c', 'printf %s "$1"', 'sh', args[0]];
    case 'err':
      return ['/bin/sh', '-c', 'printf %s "$1" >&2', 'sh', args[0]];
    case 'env':
      return ['/usr/bin/env'];
    case 'pwd':
      return ['/bin/sh', '-c', 'pwd -P'];
    case 'write':
      return ['/bin/sh', '-c', 'mkdir -p "$(dirname "$1")" && printf %s "$2" > "$1"', 'sh', args[0], args[1]];
    case 'symlink':
      return ['/bin/ln', '-s', args[0], args[1]];
    case 'sleep':
      return ['/bin/sleep', args[0]];
    default:
      return [`/nonexistent/${name}`];
  }
}
