// `kiln serve` as a separate process the fault suites can kill -9 and restart
// on the same data folder, and the checks they share.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { connectClients, type KilnClients } from '../helpers';
import { missingV8Flags } from '../../engine/util/v8-flags';

const REPO = resolve(__dirname, '../..');

export interface ServerProcess {
  child: ChildProcess;
  clients: KilnClients;
  stderr: () => string;
  /** kill -9, and wait for the process to be gone. */
  kill9(): Promise<void>;
  /** SIGTERM, then SIGKILL after a while. */
  stop(): Promise<void>;
}

/** The built CLI when there is one (CI builds first), else the TypeScript sources through tsx. */
function serveCommand(): string[] {
  const built = join(REPO, 'dist/engine/cli.js');
  if (existsSync(built) && process.env.KILN_FAULT_FROM_SOURCES !== '1') return [built];
  return ['--import', 'tsx', join(REPO, 'engine/cli.ts')];
}

export async function startServer(dataDir: string, extraArgs: string[] = []): Promise<ServerProcess> {
  // KILN_FAULT_NODE_FLAGS: node flags for the server (e.g. --cpu-prof), to see where a run spends its time.
  const nodeFlags = (process.env.KILN_FAULT_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  // The engine's V8 flags given here, so serve does not relaunch itself: kill9 must hit the engine, not a launcher.
  nodeFlags.push(...missingV8Flags(nodeFlags));
  const args = [...nodeFlags, ...serveCommand(), 'serve', '--port', '0', '--http-port', '0', '--data-dir', dataDir, ...extraArgs];
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'test' } });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const address = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`kiln serve did not get ready in 60 s; stderr:\n${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^kiln listening grpc:\/\/(\S+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        res(m[1]!);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      rej(new Error(`kiln serve exited (${signal ?? code}) before it was ready; stderr:\n${stderr}`));
    });
  });
  const clients = connectClients(address);
  return {
    child,
    clients,
    stderr: () => stderr,
    kill9: async () => {
      clients.close();
      child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      clients.close();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Pids whose command line contains `needle` (processes that should be gone). */
export function processesMatching(needle: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ');
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const zombie = stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z';
      if (!zombie && cmdline.includes(needle)) found.push(Number(name));
    } catch {
      // gone
    }
  }
  return found;
}

export function rounds(fallback = 30): number {
  const n = Number(process.env.KILN_FAULT_ROUNDS ?? fallback);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

export const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
