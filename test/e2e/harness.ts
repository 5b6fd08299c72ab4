// Shared machinery of the Bazel end-to-end tests: finding the installed Bazels,
// running one in a private copy of a workspace under test/e2e/workspaces, reading
// its process summary, and running Kiln in-process on a free port.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { defaultConfig, type KilnConfig } from '../../engine/config';
import { Engine } from '../../engine/engine';

export const WORKSPACES = resolve(__dirname, 'workspaces');
const OFFLINE = join(WORKSPACES, 'offline');

export interface BazelInstall {
  /** Shown in test names: "Bazel 4.2.3". */
  label: string;
  path: string;
  /** Debian's bazel-bootstrap: the client needs the install base spelled out. */
  debianInstallBase?: string;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Bazel 4.2.3: $KILN_TEST_BAZEL4, else Debian's bazel-bootstrap (/usr/bin/bazel-4).
 * Debian's client does not embed its server; /etc/bazel/bazelrc normally names
 * the install base, and we skip every rc file, so we name it ourselves.
 */
export function findBazel4(): BazelInstall | undefined {
  const path = process.env.KILN_TEST_BAZEL4 || '/usr/bin/bazel-4';
  if (!executable(path)) return undefined;
  const debianBase = '/usr/share/bazel';
  return {
    label: 'Bazel 4.2.3',
    path,
    debianInstallBase: existsSync(join(debianBase, 'A-server.jar')) ? debianBase : undefined,
  };
}

/** Bazel 2.1.0: $KILN_TEST_BAZEL2, else where the README's npm install puts it. */
export function findBazel2(): BazelInstall | undefined {
  const path = process.env.KILN_TEST_BAZEL2 || '/tmp/bazel2/node_modules/.bin/bazel';
  return executable(path) ? { label: 'Bazel 2.1.0', path } : undefined;
}

/** Both Bazels the suites run against, each undefined where it is not installed (the suite then skips it and says so). */
export function bazelsToTest(): { label: string; install: BazelInstall | undefined }[] {
  return [
    { label: 'Bazel 4.2.3', install: findBazel4() },
    { label: 'Bazel 2.1.0', install: findBazel2() },
  ];
}

/** Where Debian's libnetty-tcnative-jni puts netty-tcnative (OpenSSL for Netty). */
const DEBIAN_TCNATIVE = '/usr/lib/x86_64-linux-gnu/jni/libnetty-tcnative.so';

/**
 * Whether this Bazel can talk grpcs://. Debian's Bazel 4.2.3 is built with
 * Debian's Netty, which is patched without JDK ALPN support, so any
 * --tls_certificate build crashes it (exit 37, "Failed to init TLS
 * infrastructure: JDK provider does not support ALPN protocol" in the server's
 * java.log) unless Netty finds netty-tcnative; Debian ships that as
 * libnetty-tcnative-jni. BazelWorkspace.create({ tls: true }) puts it where
 * Netty looks. Bazel 2.1.0 bundles its own and always can.
 */
export function bazelTlsSupport(bazel: BazelInstall): { ok: true } | { ok: false; reason: string } {
  if (!bazel.debianInstallBase || existsSync(DEBIAN_TCNATIVE)) return { ok: true };
  return {
    ok: false,
    reason: `Debian's Bazel needs netty-tcnative for TLS and ${DEBIAN_TCNATIVE} is missing: apt-get install libnetty-tcnative-jni`,
  };
}

export interface BazelRun {
  code: number;
  /** stdout and stderr interleaved, as a person would read them. */
  output: string;
}

/** Bazel's "INFO: 9 processes: 3 internal, 6 remote cache hit." line, by kind. */
export interface ProcessSummary {
  line: string;
  total: number;
  kinds: Record<string, number>;
}

export function parseProcessSummary(output: string): ProcessSummary | undefined {
  const lines = output.split('\n').filter((l) => /^INFO: \d+ process(es)?[.:]/.test(l));
  const line = lines.at(-1);
  if (!line) return undefined;
  const m = /^INFO: (\d+) process(?:es)?(?:: (.*?))?\.?\s*$/.exec(line);
  if (!m) return undefined;
  const kinds: Record<string, number> = {};
  for (const part of (m[2] ?? '').split(',')) {
    const pm = /^\s*(\d+) (.+?)\s*$/.exec(part);
    if (pm) kinds[pm[2]] = (kinds[pm[2]] ?? 0) + Number(pm[1]);
  }
  return { line: line.slice('INFO: '.length), total: Number(m[1]), kinds };
}

/** Processes that ran somewhere (not Bazel-internal, not served from a cache). */
export function executedKinds(summary: ProcessSummary): Record<string, number> {
  return Object.fromEntries(
    Object.entries(summary.kinds).filter(([kind]) => kind !== 'internal' && !kind.includes('cache hit')),
  );
}

const BAZEL_RUN_TIMEOUT_MS = 8 * 60_000;

/**
 * A private copy of one workspace with its own Bazel server (own output_user_root,
 * no rc files, a short idle timeout as a safety net). Call dispose() at the end.
 */
export class BazelWorkspace {
  private constructor(
    readonly bazel: BazelInstall,
    readonly root: string,
    readonly dir: string,
    private readonly startup: string[],
  ) {}

  /** `tls`: the client will talk grpcs:// (see bazelTlsSupport; call that first to skip where it can't). */
  static async create(bazel: BazelInstall, workspace: string, opts: { tls?: boolean } = {}): Promise<BazelWorkspace> {
    const root = await mkdtemp(join(tmpdir(), 'kiln-e2e-bazel-'));
    const dir = join(root, 'ws');
    await cp(join(WORKSPACES, workspace), dir, { recursive: true });
    const startup = [
      `--output_user_root=${join(root, 'output_user_root')}`,
      '--nosystem_rc',
      '--nohome_rc',
      '--noworkspace_rc',
      '--host_jvm_args=-Xmx1g',
      '--max_idle_secs=120',
    ];
    if (bazel.debianInstallBase) startup.push(`--install_base=${bazel.debianInstallBase}`, '--trust_install_base');
    if (opts.tls && bazel.debianInstallBase) {
      // See bazelTlsSupport: Netty only loads libnetty_tcnative.so, and the library refuses to run
      // under another file name (so a symlink won't do): a private copy under that name.
      const libDir = join(root, 'tcnative');
      await mkdir(libDir);
      await copyFile(DEBIAN_TCNATIVE, join(libDir, 'libnetty_tcnative.so'));
      startup.push(`--host_jvm_args=-Djava.library.path=${bazel.debianInstallBase}:${libDir}`);
    }
    return new BazelWorkspace(bazel, root, dir, startup);
  }

  /** Flags every build and test gets: offline stand-ins, quiet output, hermetic env. */
  commonFlags(): string[] {
    return [
      '--color=no',
      '--curses=no',
      '--show_progress_rate_limit=60',
      '--jobs=2',
      '--verbose_failures',
      '--test_output=errors',
      '--incompatible_strict_action_env',
      `--override_repository=rules_cc=${join(OFFLINE, 'rules_cc')}`,
      `--override_repository=rules_java=${join(OFFLINE, 'rules_java')}`,
      `--override_repository=remote_coverage_tools=${join(OFFLINE, 'remote_coverage_tools')}`,
    ];
  }

  /** `bazel <command> <common flags> <flags> -- <targets>` */
  build(command: 'build' | 'test', flags: string[], targets: string[], opts: { bazelrc?: string } = {}): Promise<BazelRun> {
    return this.run([command, ...this.commonFlags(), ...flags, '--', ...targets], opts.bazelrc ? [`--bazelrc=${opts.bazelrc}`] : []);
  }

  clean(): Promise<BazelRun> {
    return this.run(['clean', '--color=no', '--curses=no']);
  }

  /** `startup`: extra startup options for this run (a different set restarts the Bazel server). */
  run(args: string[], startup: string[] = []): Promise<BazelRun> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(this.bazel.path, [...this.startup, ...startup, ...args], {
        cwd: this.dir,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const chunks: Buffer[] = [];
      child.stdout.on('data', (c: Buffer) => chunks.push(c));
      child.stderr.on('data', (c: Buffer) => chunks.push(c));
      const timer = setTimeout(() => child.kill('SIGKILL'), BAZEL_RUN_TIMEOUT_MS);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const output = Buffer.concat(chunks).toString('utf8');
        resolvePromise({ code: code ?? (signal ? 128 : 1), output: signal ? `${output}\n[killed by ${signal}]` : output });
      });
    });
  }

  /** A file under bazel-bin, or undefined when it does not exist. */
  async readOutput(rel: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.dir, 'bazel-bin', rel), 'utf8');
    } catch {
      return undefined;
    }
  }

  async isExecutable(rel: string): Promise<boolean> {
    try {
      return ((await stat(join(this.dir, 'bazel-bin', rel))).mode & 0o111) !== 0;
    } catch {
      return false;
    }
  }

  /** Stops the Bazel server and deletes everything (Bazel leaves read-only trees behind). */
  async dispose(): Promise<void> {
    await this.run(['shutdown']).catch(() => undefined);
    await makeWritable(this.root);
    await rm(this.root, { recursive: true, force: true });
  }
}

async function makeWritable(dir: string): Promise<void> {
  await new Promise<void>((done) => {
    const child = spawn('chmod', ['-R', 'u+w', dir], { stdio: 'ignore' });
    child.on('close', () => done());
    child.on('error', () => done());
  });
  await chmod(dir, 0o755).catch(() => undefined);
}

/** A Kiln engine in this process, on a free port, with a throwaway data dir. */
export interface RunningKiln {
  engine: Engine;
  url: string;
  dataDir: string;
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

export async function startKiln(opts: { dataDir?: string; config?: Partial<KilnConfig> } = {}): Promise<RunningKiln> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'kiln-e2e-data-')));
  // KILN_TEST_SANDBOX=on runs every fixture suite in the bubblewrap sandbox (issue 12).
  const sandbox = process.env.KILN_TEST_SANDBOX ? { sandbox: process.env.KILN_TEST_SANDBOX as KilnConfig['sandbox'] } : {};
  const config: KilnConfig = { ...defaultConfig(), port: 0, httpPort: 0, dataDir, ...sandbox, ...opts.config };
  const engine = await Engine.start({ config });
  return {
    engine,
    url: engine.grpcUrl,
    dataDir,
    async stop({ keepData = false } = {}) {
      await engine.stop({ drainMs: 2_000 });
      if (!keepData) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * For a suite that keeps one Kiln across its tests: a Kiln on a data folder of
 * its own and a private copy of `workspace`, made before the tests and removed
 * after them; `restart()` starts Kiln again on the same folder (what survives a
 * restart), `api()` reads its HTTP API and expects 200.
 */
export function kilnSuite(bazel: BazelInstall | undefined, workspace: string, timeoutMs: number) {
  let dataDir = '';
  let kiln: RunningKiln | undefined;
  let ws: BazelWorkspace | undefined;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'kiln-e2e-suite-'));
    kiln = await startKiln({ dataDir });
    ws = await BazelWorkspace.create(bazel!, workspace);
  }, timeoutMs);
  afterAll(async () => {
    await ws?.dispose();
    await kiln?.stop({ keepData: true });
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }, timeoutMs);
  return {
    get kiln(): RunningKiln {
      return kiln!;
    },
    get ws(): BazelWorkspace {
      return ws!;
    },
    async restart(): Promise<void> {
      await kiln!.stop({ keepData: true });
      kiln = await startKiln({ dataDir });
    },
    async api<T>(path: string): Promise<T> {
      const res = await fetch(new URL(path, kiln!.engine.httpUrl));
      expect(res.status, path).toBe(200);
      return (await res.json()) as T;
    },
  };
}

/** What the basic workspace's targets must produce, wherever their actions ran. */
export const BASIC_TARGETS = ['//:greeting', '//:shout', '//:tree', '//:tree_listing', '//:shout_test'];

export async function expectBasicOutputs(ws: BazelWorkspace): Promise<string[]> {
  const problems: string[] = [];
  const want: Record<string, string> = {
    'greeting.txt': 'hello from kiln e2e\n',
    'shout.txt': 'HELLO FROM KILN E2E\nALPHA\nBETA\nGAMMA\n',
    'tree/root.txt': 'root file\n',
    'tree/nested/inner.txt': 'nested file\n',
    'tree/nested/deeper/leaf.txt': 'deep file\n',
    'tree/empty.txt': '',
    'tree_listing.txt':
      '.\n./empty.txt\n./nested\n./nested/deeper\n./nested/deeper/leaf.txt\n./nested/inner.txt\n./root.txt\n./tool.sh\ndeep file\n',
  };
  for (const [rel, content] of Object.entries(want)) {
    const got = await ws.readOutput(rel);
    if (got === undefined) problems.push(`bazel-bin/${rel} is missing`);
    else if (got !== content) problems.push(`bazel-bin/${rel}: got ${JSON.stringify(got)}, want ${JSON.stringify(content)}`);
  }
  if (!(await ws.isExecutable('tree/tool.sh'))) problems.push('bazel-bin/tree/tool.sh is not executable');
  return problems;
}
