// Whether bubblewrap works here, found once at start: the binary must exist
// and a trial sandbox with every namespace the runner uses must start (user
// namespaces can be disabled, a container can forbid mounts). The answer says
// why not in words a person can act on.
import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants, existsSync, lstatSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { SECRET_DIRS, SECRET_FILES, SYSTEM_PATHS, bwrapArgs, type HostLayout, type SystemEntry } from './bwrap-args';

export type BwrapProbe = { available: true; bwrap: string; host: HostLayout } | { available: false; reason: string };

export interface ProbeOptions {
  /** Kiln's data folder: hidden from actions. */
  dataDir: string;
  /** PATH to search for bwrap; the engine's own by default. */
  path?: string;
  /** The action user, when actions run as one: bwrap then runs unprivileged, so the trial does too. */
  runAs?: { uid: number; gid: number; label: string };
}

export function probeBubblewrap(opts: ProbeOptions): BwrapProbe {
  if (process.platform !== 'linux') return { available: false, reason: `bubblewrap sandboxes only on Linux (this is ${process.platform})` };
  const bwrap = findProgram('bwrap', opts.path ?? process.env.PATH ?? '/usr/bin:/bin');
  if (!bwrap) return { available: false, reason: 'bubblewrap (bwrap) is not installed; install it (Debian/Ubuntu: apt-get install bubblewrap)' };
  const host = hostLayout([opts.dataDir, homedir()]);
  const trialRoot = mkdtempSync(join(tmpdir(), 'kiln-bwrap-probe-'));
  const as = opts.runAs ? ` as the action user ${opts.runAs.label}` : '';
  try {
    // The action user must be able to enter it, as it enters its exec root.
    if (opts.runAs) chmodSync(trialRoot, 0o755);
    const trial = spawnSync(bwrap, bwrapArgs(host, { execRoot: trialRoot, workingDirectory: '', argv: ['true'], network: false }), {
      env: { PATH: '/usr/bin:/bin' },
      encoding: 'utf8',
      timeout: 20_000,
      ...(opts.runAs ? { uid: opts.runAs.uid, gid: opts.runAs.gid } : {}),
    });
    if (trial.error) return { available: false, reason: `bubblewrap (${bwrap}) could not be run${as}: ${trial.error.message}` };
    if (trial.status !== 0) {
      const why = (trial.stderr ?? '').trim().split('\n')[0] || `exit status ${trial.status ?? trial.signal}`;
      const hint = opts.runAs ? 'are unprivileged user namespaces disabled? --action-user none runs actions, and bwrap, as root' : 'are user namespaces or mounts disabled?';
      return { available: false, reason: `bubblewrap (${bwrap}) cannot create a sandbox here${as}: ${why} (${hint})` };
    }
  } finally {
    rmSync(trialRoot, { recursive: true, force: true });
  }
  return { available: true, bwrap, host };
}

/** Which of the system paths exist here, as folders to bind or root-level symlinks to recreate. */
export function hostLayout(hidden: string[]): HostLayout {
  const system: SystemEntry[] = [];
  for (const path of SYSTEM_PATHS) {
    try {
      const st = lstatSync(path);
      if (st.isSymbolicLink()) system.push({ path, kind: 'symlink', target: readlinkSync(path) });
      else if (st.isDirectory()) system.push({ path, kind: 'dir' });
    } catch {
      // Not on this host (lib32, libx32…).
    }
  }
  return { system, hidden: [...hidden, ...SECRET_DIRS.filter((d) => existsSync(d))], masked: SECRET_FILES.filter((f) => existsSync(f)) };
}

function findProgram(name: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Next.
    }
  }
  return undefined;
}
