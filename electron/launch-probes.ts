// The real probes behind launch-plan.ts: where the Electron binary is, fetching it with
// a time limit, and starting it while watching for an early failure.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DesktopRun, ElectronLocation, Outcome } from './launch-plan';

/**
 * Mirrors what require('electron') does to find the binary, without its side effect:
 * that require downloads a missing binary synchronously, with no time limit.
 */
export function locateElectron(env: NodeJS.ProcessEnv = process.env, resolve: (id: string) => string = require.resolve): ElectronLocation {
  let dir: string;
  try {
    dir = dirname(resolve('electron/package.json'));
  } catch {
    return { installed: false };
  }
  let relative: string;
  try {
    relative = readFileSync(join(dir, 'path.txt'), 'utf8');
  } catch {
    return { installed: true, binaryExists: false }; // never downloaded
  }
  const binary = env.ELECTRON_OVERRIDE_DIST_PATH ? join(env.ELECTRON_OVERRIDE_DIST_PATH, relative) : join(dir, 'dist', relative);
  return { installed: true, binary, binaryExists: existsSync(binary) };
}

/** Runs electron's own installer (the same one its postinstall uses), killed after timeoutMs. */
export function downloadElectron(timeoutMs: number, resolve: (id: string) => string = require.resolve): Promise<Outcome> {
  let installer: string;
  try {
    installer = join(dirname(resolve('electron/package.json')), 'install.js');
  } catch {
    return Promise.resolve({ ok: false, reason: 'Electron is not installed' });
  }
  return new Promise((done) => {
    const child = spawn(process.execPath, [installer], { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr = tail(child.stderr);
    const timer = setTimeout(() => {
      child.kill();
      done({ ok: false, reason: `no result within ${timeoutMs / 1000} s` });
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      done({ ok: false, reason: err.message });
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      done(code === 0 ? { ok: true } : { ok: false, reason: firstErrorLine(stderr()) ?? `installer exit code ${code}` });
    });
  });
}

export interface DesktopRunnerOptions {
  /** Arguments for the binary: the app folder, then the user's own. */
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Where Electron's stderr goes once it is known to be running. */
  stderr?: NodeJS.WritableStream;
  signals?: NodeJS.Signals[];
}

/**
 * Starts Electron with stdout inherited. Its stderr is held back for the grace period:
 * if it dies early with an error, that text becomes the fallback's reason instead of
 * noise; if it keeps running, the text is passed on and so is everything after.
 */
export function desktopRunner(options: DesktopRunnerOptions) {
  return (binary: string, graceMs: number): Promise<DesktopRun> =>
    new Promise((settle) => {
      const env = { ...(options.env ?? process.env) };
      // Set in the environment, it would make Electron behave as plain Node and never open a window.
      delete env.ELECTRON_RUN_AS_NODE;
      const child = spawn(binary, options.args, { stdio: ['inherit', 'inherit', 'pipe'], env });
      const out = options.stderr ?? process.stderr;
      const held: Buffer[] = [];
      let running = false;
      let resolveExit!: (code: number) => void;
      const exitCode = new Promise<number>((resolve) => (resolveExit = resolve));

      child.stderr.on('data', (chunk: Buffer) => (running ? out.write(chunk) : held.push(chunk)));
      const grace = setTimeout(() => {
        running = true;
        for (const chunk of held.splice(0)) out.write(chunk);
        // Forward Ctrl-C and service stops so Electron quits cleanly (it drains the engine).
        for (const signal of options.signals ?? ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
        settle({ kind: 'running', exitCode });
      }, graceMs);

      child.on('error', (err) => {
        clearTimeout(grace);
        settle({ kind: 'failed', reason: err.message });
      });
      child.on('exit', (code, signal) => {
        const status = code ?? (signal ? 1 : 0);
        resolveExit(status);
        if (running) return;
        clearTimeout(grace);
        // Exit 0 early is fine: a second instance that handed over to the running Kiln.
        if (status === 0) settle({ kind: 'running', exitCode });
        else {
          const text = Buffer.concat(held).toString('utf8');
          settle({ kind: 'failed', reason: firstErrorLine(text) ?? (signal ? `killed by ${signal}` : `exit code ${code}`) });
        }
      });
    });
}

/** Keeps the last 16 KiB of a stream: enough for an error message, bounded for a chatty child. */
function tail(stream: NodeJS.ReadableStream): () => string {
  let text = '';
  stream.on('data', (chunk: Buffer) => (text = (text + chunk.toString('utf8')).slice(-16 * 1024)));
  return () => text;
}

/** The most telling line of an error output: the first that mentions an error, else the last. */
export function firstErrorLine(text: string): string | undefined {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const line = lines.find((l) => /error|fatal|cannot|not supported|failed/i.test(l)) ?? lines.at(-1);
  return line && line.length > 200 ? `${line.slice(0, 199)}…` : line;
}
