// The macOS sandbox: a Runner decorator that starts each action through
// `sandbox-exec -p PROFILE`, with a Seatbelt profile of its own
// (seatbelt-profile.ts): its exec root and a temporary folder of its own
// writable, the home and Kiln's data folder unreadable (other actions' exec
// roots are in the data folder), the network per network=on. macOS has no
// cgroups: no memory, CPU or process limits. Chosen by sandbox-setup.ts on
// darwin only; checked with a stand-in for sandbox-exec, never on a real Mac.
import { existsSync, realpathSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ActionSignal, RunExit, RunRequest, Runner, RunnerCapabilities, RunnerReadiness } from '../execution/runner';
import { SPAWN_FAILURE_EXIT_CODE } from '../execution/runner';
import { optOutRefused, readSandboxProperties } from './sandbox-properties';
import { tail } from './sandbox-runner';
import { seatbeltProfile } from './seatbelt-profile';

/** Where macOS keeps it; `auto` turns the sandbox on when it is there. */
export const SANDBOX_EXEC = '/usr/bin/sandbox-exec';

export interface SeatbeltRunnerOptions {
  /** Starts sandbox-exec (a ProcessRunner). Closed with this runner. */
  inner: Runner;
  /** Path of sandbox-exec (a stand-in in tests). */
  sandboxExec: string;
  /** Folders actions must not read: the home and Kiln's data folder. */
  hidden: readonly string[];
  /** Where each action's temporary folder is made; the OS's temp folder by default. */
  tmpRoot?: string;
  /** Whether an action may ask to run unsandboxed (platform property sandbox=none). */
  allowOptOut?: boolean;
}

export class SeatbeltRunner implements Runner {
  private readonly hidden: string[];

  constructor(private readonly opts: SeatbeltRunnerOptions) {
    // Seatbelt matches resolved paths (/tmp is /private/tmp, /var is /private/var on macOS).
    this.hidden = opts.hidden.map(resolved);
  }

  async run(req: RunRequest): Promise<RunExit> {
    const props = readSandboxProperties(req.platform);
    if (props.optOut) {
      if (this.opts.allowOptOut) return this.opts.inner.run(req);
      throw optOutRefused();
    }
    const network = props.network ?? req.resources?.network ?? false;
    // Compilers write temporaries to $TMPDIR (else /tmp, which the profile keeps closed): one folder per action, removed after it.
    const tmpDir = await mkdtemp(join(resolved(this.opts.tmpRoot ?? tmpdir()), 'kiln-action-'));
    try {
      // Made by Kiln (0700): an action started as the action user must own it to write there.
      if (req.runAs) await chown(tmpDir, req.runAs.uid, req.runAs.gid);
      const profile = seatbeltProfile({ execRoot: resolved(req.execRoot), tmpDir, hidden: this.hidden, network });
      const env = req.env.TMPDIR === undefined ? { ...req.env, TMPDIR: tmpDir } : req.env;
      const exit = await this.opts.inner.run({ ...req, argv: [this.opts.sandboxExec, '-p', profile, ...req.argv], env });
      return await explainSandboxExecFailure(exit, req);
    } finally {
      await rm(tmpDir, { recursive: true, force: true }).catch(() => {});
    }
  }

  kill(id: string): void {
    this.opts.inner.kill(id);
  }

  /** sandbox-exec execs the action in its own place: the inner runner's process group is the action's. */
  signal(id: string, signal: ActionSignal): boolean {
    return this.opts.inner.signal?.(id, signal) ?? false;
  }

  async warm(): Promise<void> {
    await this.opts.inner.warm?.();
  }

  ready(): RunnerReadiness {
    return this.opts.inner.ready();
  }

  capabilities(): RunnerCapabilities {
    return { name: 'sandbox-exec', honours: { memoryLimit: false, cpuLimit: false, networkIsolation: true, priority: this.opts.inner.capabilities().honours.priority } };
  }

  async close(): Promise<void> {
    await this.opts.inner.close();
  }
}

/**
 * sandbox-exec's own failures, by its last stderr line: a program it could not
 * exec is the action's spawn error (127); a profile it refused is Kiln's
 * failure, not the action's. The wording matched (`sandbox-exec: execvp() of
 * 'gcc' failed: …`) is what sandbox-exec is known to print, not seen on a real Mac here.
 */
async function explainSandboxExecFailure(exit: RunExit, req: RunRequest): Promise<RunExit> {
  if (exit.exitCode === 0 || exit.signal || !req.stderr.path) return exit;
  const last = (await tail(req.stderr.path)).trimEnd().split('\n').at(-1) ?? '';
  if (!last.startsWith('sandbox-exec: ')) return exit;
  const what = last.slice('sandbox-exec: '.length);
  if (/^execvp\(\)/.test(what)) return { ...exit, exitCode: SPAWN_FAILURE_EXIT_CODE, spawnError: what };
  throw new Error(`could not make the sandbox: ${what}`);
}

/** The path with its symlinks resolved, as far up as it exists. */
function resolved(path: string): string {
  if (existsSync(path)) return realpathSync(path);
  const parent = dirname(path);
  return parent === path ? path : join(resolved(parent), path.slice(parent.length + (parent.endsWith('/') ? 0 : 1)));
}
