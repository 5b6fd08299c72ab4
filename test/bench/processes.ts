// The processes the bench measures and measures against: `kiln serve` from the
// build, the bare grpc-js server, Bazel's reference REAPI worker, and the small
// client processes that drive them. Also what /proc says about their CPU and memory.
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { buildSync } from 'esbuild';
import { ENGINE_V8_FLAGS, missingV8Flags } from '../../engine/util/v8-flags';
import type { Job, ResultOf } from './jobs';
import { ReapiClients, unary } from './lib';

export const REPO = resolve(__dirname, '../..');
export const SHARED = resolve(REPO, '../shared');

export interface Server {
  pid: number;
  /** host:port */
  address: string;
  stop(): Promise<void>;
  /** What it logged at start, up to its listening line (kiln serve: its sandbox and action-user decisions). */
  startup?: string[];
}

/** Waits for `pattern` on the child's stdout; rejects if it exits first or `timeoutMs` passes. */
function waitForLine(child: ChildProcess, pattern: RegExp, what: string, timeoutMs: number, seen: string[] = []): Promise<RegExpMatchArray> {
  return new Promise((resolvePromise, reject) => {
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-2000);
      for (const line of b.toString().split('\n')) if (line) seen.push(line);
    });
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before it was ready: ${stderr}`));
    };
    child.once('exit', onExit);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      seen.push(line);
      const m = line.match(pattern);
      if (!m) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolvePromise(m);
    });
  });
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once('exit', () => done());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
    });
}

/** `kiln serve` from dist/ (run `npm run build` first), on free ports, with its own data folder. */
/**
 * `kiln serve` from the build. `asUid`: started as that uid and gid (setpriv
 * drops to it and execs node, so the pid is Kiln's), as a desk runs it: not
 * root; the data folder must be that user's.
 */
export async function startKiln(dataDir: string, extraArgs: string[] = [], nodeArgs: string[] = [], opts: { asUid?: number } = {}): Promise<Server> {
  // KILN_BENCH_DIST: another build (a copy of an older dist/) to alternate against this one.
  const dist = process.env.KILN_BENCH_DIST ?? join(REPO, 'dist');
  const cli = join(dist, 'engine/cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build`);
  // The engine's V8 flags given here (unless nodeArgs sets them), so serve does not relaunch
  // itself and the pid measured is the engine's own; the flags of the build that runs, so an
  // older build is measured as it would start.
  const argv = [...nodeArgs, ...missingV8Flags(nodeArgs, engineV8FlagsOf(dist)), cli, 'serve', '--port', '0', '--http-port', '0', '--data-dir', dataDir, ...extraArgs];
  const uid = opts.asUid === undefined ? undefined : String(opts.asUid);
  const child = uid
    ? spawn('setpriv', ['--reuid', uid, '--regid', uid, '--clear-groups', process.execPath, ...argv], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, HOME: dataDir },
      })
    : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const startup: string[] = [];
  const m = await waitForLine(child, /kiln listening grpc:\/\/(\S+)/, 'kiln serve', 60_000, startup);
  return { pid: child.pid!, address: m[1], stop: stopper(child), startup };
}

/** ENGINE_V8_FLAGS as the build in `dist` has them (this source's when the build has none). */
function engineV8FlagsOf(dist: string): readonly string[] {
  const file = join(dist, 'engine/util/v8-flags.js');
  return existsSync(file) ? (require(file) as { ENGINE_V8_FLAGS: readonly string[] }).ENGINE_V8_FLAGS : ENGINE_V8_FLAGS;
}

const bundles = new Map<string, string>();

/**
 * A bench entry point bundled to plain JS (node_modules left outside), so its
 * process runs as lean as `kiln serve` from dist/: no TypeScript loader in
 * the process that is measured or that measures.
 */
export function bundled(entry: string): string {
  let out = bundles.get(entry);
  if (!out) {
    out = join(REPO, 'test-output/bench/js', entry.replace(/\.ts$/, '.js'));
    buildSync({ entryPoints: [join(__dirname, entry)], bundle: true, platform: 'node', format: 'cjs', packages: 'external', outfile: out, logLevel: 'error' });
    bundles.set(entry, out);
  }
  return out;
}

/** The bare grpc-js server (bare-server.ts) in its own process. */
export async function startBare(): Promise<Server> {
  const child = spawn(process.execPath, [bundled('bare-server.ts')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: REPO,
  });
  const m = await waitForLine(child, /bare listening (\S+)/, 'the bare grpc-js server', 60_000);
  return { pid: child.pid!, address: m[1], stop: stopper(child) };
}

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePromise(port));
    });
  });
}

const REFERENCE_SCRIPT = join(SHARED, 'peers/reference-worker.sh');
/** Compiled classes are kept here between runs; each run gets a fresh CAS and work folder. */
const REFERENCE_BUILD = join(tmpdir(), 'kiln-bench-reference-worker');

/** Why the reference worker can't run here, or undefined when it can. */
export function referenceWorkerMissing(): string | undefined {
  if (!existsSync(REFERENCE_SCRIPT)) return `${REFERENCE_SCRIPT} not found`;
  if (!existsSync('/usr/share/bazel/A-server.jar')) return 'no /usr/share/bazel/A-server.jar (apt-get install bazel-bootstrap)';
  return undefined;
}

/**
 * Bazel's reference REAPI worker, built once (javac, about a minute) and then
 * started from the cached classes. It listens on every interface; the bench
 * only ever talks to it on 127.0.0.1.
 */
export async function startReferenceWorker(runDir: string): Promise<Server> {
  execFileSync('bash', [REFERENCE_SCRIPT, '--dir', REFERENCE_BUILD, '--build-only'], { stdio: ['ignore', 'ignore', 'pipe'] });
  mkdirSync(runDir, { recursive: true });
  const classes = join(runDir, 'classes');
  if (!existsSync(classes)) symlinkSync(join(REFERENCE_BUILD, 'classes'), classes);
  const port = await freePort();
  const child = spawn('bash', [REFERENCE_SCRIPT, '--port', String(port), '--dir', runDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const address = `127.0.0.1:${port}`;
  const stop = stopper(child);
  // It prints nothing when ready: poll GetCapabilities.
  const c = new ReapiClients(address);
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the reference worker exited (${child.exitCode})`);
      try {
        await unary(c.caps, 'getCapabilities', {});
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  } finally {
    c.close();
  }
  return { pid: child.pid!, address, stop };
}

/** A small client process (client.ts) that runs jobs and answers with JSON. */
export class ClientProcess {
  private readonly child: ChildProcess;
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

  constructor() {
    this.child = fork(bundled('client.ts'), [], { execArgv: [], cwd: REPO, stdio: 'inherit' });
    this.child.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.error) w.reject(new Error(`bench client: ${m.error}`));
      else w.resolve(m.result);
    });
    this.child.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`bench client exited (${code})`));
      this.waiting.clear();
    });
  }

  run<J extends Job>(job: J): Promise<ResultOf<J>> {
    const id = this.nextId++;
    return new Promise((resolvePromise, reject) => {
      this.waiting.set(id, { resolve: resolvePromise as (v: unknown) => void, reject });
      this.child.send({ id, job });
    });
  }

  close(): void {
    if (this.child.connected) this.child.disconnect();
  }
}

/** Runs one job in a fresh client process. */
export async function inClient<J extends Job>(job: J): Promise<ResultOf<J>> {
  const c = new ClientProcess();
  try {
    return await c.run(job);
  } finally {
    c.close();
  }
}

// ------------------------------------------------------------------ /proc
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Fields of /proc/PID/stat after the command name (which may contain blanks). */
function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The process's own user + system CPU (all its threads, not its children), in ms. */
export function ownCpuMs(pid: number): number {
  const f = statFields(pid);
  // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
  return f ? ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK : 0;
}

/** CPU of the processes this one has waited for (cutime + cstime): a launcher's finished actions. */
export function reapedCpuMs(pid: number): number {
  const f = statFields(pid);
  return f ? ((Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK : 0;
}

export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f && Number(f[1]) === pid) out.push(Number(name));
  }
  return out;
}

/** Every process below `pid` (children, theirs, …): a slot's sandbox holds its agent two levels down. */
export function descendantPids(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f) parentOf.set(Number(name), Number(f[1]));
  }
  const out: number[] = [];
  const below = new Set([pid]);
  // Parents have lower pids most of the time, but not always: repeat until nothing is added.
  for (let added = true; added; ) {
    added = false;
    for (const [child, parent] of parentOf) {
      if (below.has(parent) && !below.has(child)) {
        below.add(child);
        out.push(child);
        added = true;
      }
    }
  }
  return out;
}

/**
 * Kiln's own processes: the server, its direct children (launchers, and the
 * bwrap of each slot's sandbox), below a bwrap its init and the slot's
 * agent (a launcher inside the sandbox), and the agent's spawner (kiln-spawn).
 * Actions are a launcher's, a spawner's or an agent's children and are left
 * out, as are per-action bwraps (a launcher's children).
 */
export function kilnPids(pid: number): number[] {
  const comm = (p: number) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const out = [pid];
  let frontier = childPids(pid);
  while (frontier.length > 0) {
    out.push(...frontier);
    // Into slot sandboxes (bwrap), and from each slot's agent to its spawner (kiln-spawn): Kiln's own.
    // Never into the actions, which are the spawner's children (or the agent's, without one).
    const spawners = frontier.flatMap((p) => childPids(p)).filter((c) => comm(c) === 'kiln-spawn');
    out.push(...spawners);
    frontier = frontier.filter((p) => comm(p) === 'bwrap').flatMap((p) => childPids(p));
  }
  return out;
}

/**
 * CPU of a server and its helper processes (kilnPids), per pid. Only
 * utime+stime of each process itself are read, never cutime, so what the
 * actions spend is not counted.
 */
export function serverCpu(pid: number): Map<number, number> {
  return new Map(kilnPids(pid).map((p) => [p, ownCpuMs(p)]));
}

/**
 * serverCpu once Kiln has gone quiet after a burst of work: what it put off until a
 * quiet moment (exec roots removed a second after the last action, see
 * engine/worker/background-removals.ts) is that burst's cost too. Waits out the quiet
 * period, then samples until two snapshots 250 ms apart differ by under 2 ms (8 s at most).
 */
export async function serverCpuWhenQuiet(pid: number): Promise<Map<number, number>> {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  await sleep(1_500);
  let last = serverCpu(pid);
  for (let waited = 0; waited < 8_000; waited += 250) {
    await sleep(250);
    const now = serverCpu(pid);
    if (cpuBetween(last, now) < 2) return now;
    last = now;
  }
  return last;
}

/** CPU used between two serverCpu snapshots (a process that appeared in between counts from 0). */
export function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0);
  return total;
}

export function rssMiB(pid: number): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}
