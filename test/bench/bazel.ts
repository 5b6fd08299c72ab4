// Drives Bazel on the shared fixtures' `many` workspace (many_genrules: 300
// genrules + 1 concat; many_cc: 204 actions), with run.sh's flags, locally or
// against a REAPI endpoint. One Bazel server for every build, started and
// warmed before anything is timed; `bazel clean` before each timed build so
// every action really runs again.
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nowMs } from './lib';
import { SHARED } from './processes';

export const FIXTURES = join(SHARED, 'bazel-fixtures');
export const DEFAULT_BAZEL = '/usr/bin/bazel-4';

export const TARGETS = { many_genrules: '//:many_genrules', many_cc: '//:many_cc_out' } as const;
export type Fixture = keyof typeof TARGETS;

export interface BuildResult {
  seconds: number;
  /** Bazel's "INFO: N processes: …" summary. */
  summary: string;
  /** Spawns Bazel counted as remote (executed remotely, not cache hits). */
  remoteActions: number;
}

/** Why Bazel can't be driven here, or undefined. */
export function bazelMissing(bazel: string): string | undefined {
  if (!existsSync(join(FIXTURES, 'many/BUILD'))) return `${FIXTURES}/many not found`;
  if (!existsSync(bazel)) return `no Bazel at ${bazel}`;
  return undefined;
}

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

export class BazelDriver {
  private readonly work = mkdtempSync(join(tmpdir(), 'kiln-bench-bazel-'));
  private readonly ws = join(this.work, 'many');
  private readonly startup: string[];
  private readonly common: string[];

  constructor(private readonly bazel: string) {
    cpSync(join(FIXTURES, 'many'), this.ws, { recursive: true });
    cpSync(join(FIXTURES, 'offline'), join(this.work, 'offline'), { recursive: true });
    this.startup = [
      `--output_user_root=${join(this.work, 'output_user_root')}`,
      '--nosystem_rc',
      '--nohome_rc',
      '--noworkspace_rc',
      '--host_jvm_args=-Xmx2g',
      '--max_idle_secs=600',
    ];
    let version = '';
    try {
      version = execFileSync(bazel, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    } catch {
      // Reported by the first build.
    }
    // Debian's bazel-bootstrap keeps its server apart; its system bazelrc (skipped here) names it.
    if (version.includes('no_version') && existsSync('/usr/share/bazel/A-server.jar')) {
      this.startup.push('--install_base=/usr/share/bazel', '--trust_install_base');
    }
    const off = join(this.work, 'offline');
    this.common = [
      '--jobs=2',
      '--color=no',
      '--curses=no',
      '--verbose_failures',
      '--incompatible_strict_action_env',
      `--override_repository=rules_cc=${off}/rules_cc`,
      `--override_repository=rules_java=${off}/rules_java`,
      `--override_repository=remote_coverage_tools=${off}/remote_coverage_tools`,
    ];
  }

  /** Starts the server and loads and analyses both targets, untimed. */
  async warm(): Promise<void> {
    const r = await run(this.bazel, [...this.startup, 'build', ...this.common, '--nobuild', '--', ...Object.values(TARGETS)], this.ws);
    if (r.code !== 0) throw new Error(`bazel build --nobuild failed (${r.code}): ${tail(r.out)}`);
  }

  /** A clean build of one fixture; `endpoint` (host:port) for remote execution, none for local. */
  async build(fixture: Fixture, endpoint?: string): Promise<BuildResult> {
    const clean = await run(this.bazel, [...this.startup, 'clean'], this.ws);
    if (clean.code !== 0) throw new Error(`bazel clean failed: ${tail(clean.out)}`);
    const mode = endpoint
      ? [
          `--remote_executor=grpc://${endpoint}`,
          '--spawn_strategy=remote',
          '--noremote_local_fallback',
          '--remote_timeout=60',
          '--remote_download_outputs=all',
          '--noremote_accept_cached',
        ]
      : [];
    const t0 = nowMs();
    const r = await run(this.bazel, [...this.startup, 'build', ...this.common, ...mode, '--', TARGETS[fixture]], this.ws);
    const seconds = (nowMs() - t0) / 1000;
    const where = endpoint ? `against ${endpoint}` : 'locally';
    if (r.code !== 0) throw new Error(`bazel build ${TARGETS[fixture]} ${where} failed (${r.code}): ${tail(r.out)}`);
    this.check(fixture);
    const summary = (r.out.match(/^INFO: \d+ process(?:es)?[:.].*$/gm) ?? []).pop()?.replace(/^INFO: /, '') ?? '';
    const remote = summary.match(/(\d+) remote(?![ a-z]*cache)/);
    const remoteActions = remote ? Number(remote[1]) : 0;
    if (endpoint && remoteActions === 0) throw new Error(`bazel ran nothing remotely ${where}: ${summary}`);
    return { seconds, summary, remoteActions };
  }

  /** The build's output is right (a fast build of the wrong thing proves nothing). */
  private check(fixture: Fixture): void {
    const bin = join(this.ws, 'bazel-bin');
    if (fixture === 'many_genrules') {
      const lines = readFileSync(join(bin, 'many_genrules.txt'), 'utf8').trimEnd().split('\n');
      if (lines.length !== 300 || lines[0] !== 'item-000' || lines[299] !== 'item-299') {
        throw new Error(`many_genrules.txt has ${lines.length} lines (${lines[0]} … ${lines[lines.length - 1]})`);
      }
    } else {
      const out = readFileSync(join(bin, 'many_cc_out.txt'), 'utf8').trim();
      if (out !== 'sum=4950') throw new Error(`many_cc_out.txt says ${out}, want sum=4950`);
    }
  }

  async close(): Promise<void> {
    await run(this.bazel, [...this.startup, 'shutdown'], this.ws);
    try {
      execFileSync('chmod', ['-R', 'u+w', this.work]);
    } catch {
      // Best effort: read-only outputs may remain.
    }
    rmSync(this.work, { recursive: true, force: true });
  }
}

function tail(s: string): string {
  return s.trim().split('\n').slice(-5).join(' | ').slice(0, 600);
}
