// The bubblewrap command line for one action, as a pure function of what the
// action needs and how this host is laid out, so the rules can be read (and
// tested) in one place: the system read-only, the exec root the only writable
// place besides a private /tmp, the home and Kiln's data folder not there at
// all, fresh PID/IPC/UTS (and network) namespaces, a minimal /dev.
import { join } from 'node:path';
import { SLOT_SCRATCH } from '../worker/slot-agent';

/** A top-level entry of the host's root that actions get to see. */
export type SystemEntry = { path: string; kind: 'dir' } | { path: string; kind: 'symlink'; target: string };

export interface HostLayout {
  /** Read-only system folders (and the root-level symlinks between them, e.g. /bin → usr/bin). */
  system: SystemEntry[];
  /**
   * Folders that must not be visible even when they sit inside a system folder
   * (the data folder under /opt or /usr/local, a home under /etc…): each is
   * covered with an empty tmpfs.
   */
  hidden: string[];
  /** Files inside system folders that only root may read (/etc/shadow): replaced by an empty file. */
  masked?: string[];
}

export interface SandboxedCommand {
  execRoot: string;
  /** Relative to execRoot. */
  workingDirectory: string;
  argv: string[];
  /** False: a network namespace of its own with nothing in it (not even a working loopback). */
  network: boolean;
  /** The Command's own PWD, if it sets one: bwrap sets PWD itself, so it is put back or removed. */
  pwd?: string;
  /** How many cgroup.procs files the action inherits as fds 4, 5, … to join before it runs. */
  cgroupFds?: number;
  /** More folders bound read-only (kiln-nest's, when it watches the action's memory). */
  readOnly?: readonly string[];
}

/** The shell that runs PRELUDE inside the sandbox. */
export const PRELUDE_SHELL = '/bin/sh';
/** The name the prelude's own errors carry ("kiln-action: 1: exec: gcc: not found"). */
export const PRELUDE_NAME = 'kiln-action';

/**
 * Runs inside the sandbox as its PID 1 (bwrap --as-pid-1: no bwrap init in
 * front of it), then runs the action as its child and waits for it: joins the
 * cgroups through the inherited fds ("0" is the writer itself, whatever its
 * pid inside the namespace) and closes them, so every process of the action is
 * born inside; then puts PWD back as the Command has it ("=value") or removes
 * it ("-"): bwrap always sets it, and the shell would too.
 * The action is forked, not exec'd: as PID 1 it would be immune to its own
 * default-action signals (`kill $$`, abort() would turn into SIGSEGV, a
 * broken pipe into EPIPE); as PID 1's child it behaves as it does outside. The
 * shell reaps what gets orphaned into it while it waits, exits with the
 * action's status (128+N for a signal, as bwrap's init did) and, as PID 1,
 * takes everything left in the namespace with it.
 * Arguments: the number of cgroup fds, the PWD word, then the argv.
 */
export const PRELUDE =
  'i=0; while [ "$i" -lt "$1" ]; do fd=$((i+4)); eval "echo 0 >&$fd && exec $fd>&-" || exit 125; i=$((i+1)); done; ' +
  'shift; if [ "$1" = - ]; then unset PWD; else export PWD="${1#=}"; fi; shift; "$@"; exit $?';

/** Files of the system only root may read, masked when present. */
export const SECRET_FILES = ['/etc/shadow', '/etc/gshadow', '/etc/shadow-', '/etc/gshadow-'];
/** Folders of the system with root-only secrets (host keys), hidden when present. */
export const SECRET_DIRS = ['/etc/ssh'];

/** The folders (or root-level symlinks) a build action reasonably needs from the system. */
export const SYSTEM_PATHS = ['/usr', '/etc', '/opt', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** Arguments for bwrap (without the program name). */
export function bwrapArgs(host: HostLayout, cmd: SandboxedCommand): string[] {
  const args = systemArgs(host, cmd.readOnly);
  args.push('--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', ...scratchBinds(host, cmd.readOnly));
  // The exec root keeps its host path, so absolute paths an action computes stay true outside.
  args.push('--bind', cmd.execRoot, cmd.execRoot);
  args.push('--chdir', join(cmd.execRoot, cmd.workingDirectory));
  args.push('--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try');
  // bwrap keeps every capability when Kiln runs as root: without this an action
  // could remount the system writable, or mknod and mount a disk.
  args.push('--cap-drop', 'ALL');
  if (!cmd.network) args.push('--unshare-net');
  // The prelude is the PID namespace's init (bwrap's own init, a fork of bwrap
  // that only waits, cost ~3 ms of CPU per action). It dies with bwrap (and
  // bwrap with the launcher), and when it ends the kernel kills everything
  // else in the namespace: a setsid'd or daemonised child cannot outlive the action.
  // No --new-session: the launcher starts bwrap as the leader of a session of
  // its own with no terminal (detached), so there is no terminal to reach
  // (TIOCSTI), and staying in bwrap's process group is what lets the
  // launcher's pause (SIGSTOP), resume and signals reach the action.
  args.push('--as-pid-1', '--die-with-parent', '--hostname', 'kiln-sandbox');
  // The action gets exactly the Command's environment (Bazel sets PWD=/proc/self/cwd): see PRELUDE.
  const pwd = cmd.pwd === undefined ? '-' : `=${cmd.pwd}`;
  args.push('--', PRELUDE_SHELL, '-c', PRELUDE, PRELUDE_NAME, String(cmd.cgroupFds ?? 0), pwd, ...cmd.argv);
  return args;
}

/**
 * The system read-only, with what must stay unseen in it covered; `extraDirs`
 * are more folders bound read-only (a slot's agent code), whose hidden parts
 * are covered the same way.
 */
export function systemArgs(host: HostLayout, extraDirs: readonly string[] = []): string[] {
  const args: string[] = [];
  for (const entry of host.system) {
    if (entry.kind === 'symlink') args.push('--symlink', entry.target, entry.path);
    else args.push('--ro-bind', entry.path, entry.path);
  }
  // Folders inside /tmp or /dev/shm would be covered by the sandbox's own: scratchBinds() binds them after it.
  const early = extraDirs.filter((dir) => !inScratch(dir));
  const bound = [...host.system.flatMap((e) => (e.kind === 'dir' ? [e.path] : [])), ...early];
  for (const dir of early) if (!bound.some((b) => b !== dir && isWithin(dir, b))) args.push('--ro-bind', dir, dir);
  for (const path of host.hidden) {
    if (bound.some((dir) => isWithin(path, dir))) args.push('--tmpfs', path);
  }
  for (const path of host.masked ?? []) args.push('--ro-bind', '/dev/null', path);
  return args;
}

/** Inside a folder each sandbox gets empty, a tmpfs of its own (the slot agent's scratch). */
function inScratch(dir: string): boolean {
  return SLOT_SCRATCH.some((s) => dir !== s && isWithin(dir, s));
}

/**
 * Read-only binds of the `extraDirs` inside /tmp or /dev/shm (an AppImage runs
 * from /tmp/.mount_…), with what must stay unseen in them covered: given after
 * the sandbox's own tmpfs there, which would otherwise cover them.
 */
export function scratchBinds(host: HostLayout, extraDirs: readonly string[] = []): string[] {
  const late = extraDirs.filter(inScratch);
  const args: string[] = [];
  for (const dir of late) if (!late.some((b) => b !== dir && isWithin(dir, b))) args.push('--ro-bind', dir, dir);
  for (const path of host.hidden) if (late.some((dir) => isWithin(path, dir))) args.push('--tmpfs', path);
  return args;
}

export function isWithin(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}
