// The bubblewrap command line of a slot's sandbox (slot-sandboxes.ts): made
// once, it holds the slot's agent (the launcher in slot mode) for as long as
// it lives, and each action the agent starts inside it. A pure function of the
// host's layout, so the rules can be read and tested in one place.
//
// What differs from one sandbox per action (bwrap-args.ts):
// - the whole build folder is bound at its own path, not one exec root: each
//   action runs as a uid of its own, its exec root is 0700 and the build folder
//   0711, so it can neither list the folder nor enter another action's exec
//   root (the same rule that keeps actions apart with the sandbox off), and it
//   can write nowhere in the folder but its own exec root;
// - the agent's own things sit under AGENT_DIR (0700, root's): the log folder,
//   where it opens each action's stdout and stderr, and the cgroup folders it
//   joins each action's cgroups through; actions cannot pass through it;
// - the agent keeps just the capabilities it needs: to become the action's uid
//   (SETUID, SETGID), to kill what an action left (KILL), to empty /tmp and
//   /dev/shm of an action's files (DAC_OVERRIDE, FOWNER) and to lower a polite
//   action's priority (SYS_NICE). The action loses them all as it changes from
//   uid 0 to its own, and bubblewrap's no_new_privs and nosuid mounts keep it
//   from getting any back;
// - /tmp and /dev/shm are open to all (1777, as on a host); the agent empties
//   both after each action.
import { dirname, join } from 'node:path';
import { isWithin, scratchBinds, systemArgs, type HostLayout } from './bwrap-args';

/** Inside the slot: the agent's folder, closed to actions. */
export const AGENT_DIR = '/run/kiln';
export const AGENT_LOG_DIR = `${AGENT_DIR}/logs`;
export const AGENT_CGROUP_DIR = `${AGENT_DIR}/cgroup`;

export const AGENT_CAPABILITIES = ['CAP_SETUID', 'CAP_SETGID', 'CAP_KILL', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_SYS_NICE'];

export interface SlotLayout {
  host: HostLayout;
  /** Where the exec roots are made (build-folder.ts): bound read-write at its own path. */
  buildRoot: string;
  /** Where actions' stdout and stderr files are (the data folder's logs/): bound at AGENT_LOG_DIR. */
  logDir: string;
  /** The cgroup folders per-action cgroups are made in (one per v1 hierarchy): bound at AGENT_CGROUP_DIR/0, 1, … */
  cgroupParents: readonly string[];
  /** Folders the agent's program needs (Kiln's code), bound read-only at their own path. */
  codeDirs: readonly string[];
  /** The agent's command line (node and the launcher) and environment. */
  agent: { argv: string[]; cwd: string; env: Record<string, string> };
  /**
   * Kiln is not root (a desk): the slot is an unprivileged bubblewrap in a user
   * namespace of its own, the agent holds no capability, and each action is
   * started through kiln-nest (nest-args.ts) in namespaces of its own. Actions
   * share Kiln's uid there, so it is kiln-nest, not permissions, that keeps
   * them from the build folder, the agent's folder and the agent itself.
   */
  unprivileged?: boolean;
}

export function slotBwrapArgs(layout: SlotLayout): string[] {
  // bwrap (as root) makes the folders above a bind 0700: an action could then reach its exec root only
  // by a relative path, and Bazel's test runner, for one, goes by absolute paths. So they are made 0755
  // first, as on the host (Kiln's code below keeps bwrap's 0700 folders: actions need none of it).
  const args: string[] = [];
  const systemDirs = layout.host.system.flatMap((e) => (e.kind === 'dir' ? [e.path] : []));
  for (const dir of ancestors(layout.buildRoot)) {
    if (!systemDirs.some((s) => isWithin(dir, s))) args.push('--perms', '0755', '--dir', dir);
  }
  args.push(...systemArgs(layout.host, layout.codeDirs));
  args.push('--dev', '/dev', '--perms', '1777', '--tmpfs', '/dev/shm', '--proc', '/proc', '--perms', '1777', '--tmpfs', '/tmp');
  // Kiln's code where it runs from /tmp (an AppImage): the agent leaves it there as it empties /tmp (slot-agent.ts).
  args.push(...scratchBinds(layout.host, layout.codeDirs));
  args.push('--bind', layout.buildRoot, layout.buildRoot);
  args.push('--perms', '0700', '--dir', AGENT_DIR);
  args.push('--bind', layout.logDir, AGENT_LOG_DIR);
  layout.cgroupParents.forEach((dir, i) => args.push('--bind', dir, join(AGENT_CGROUP_DIR, String(i))));
  // The network stays off for the slot's whole life: an action that asks for it gets a sandbox of its own.
  if (layout.unprivileged) args.push('--unshare-user');
  args.push('--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--unshare-cgroup-try');
  // Unprivileged, bwrap gives the agent no capability anyway (and kiln-nest needs none: it makes its own user namespace).
  if (!layout.unprivileged) {
    args.push('--cap-drop', 'ALL');
    for (const cap of AGENT_CAPABILITIES) args.push('--cap-add', cap);
  }
  // bwrap's own init stays PID 1 (no --as-pid-1): it reaps what an action orphans, and when the agent
  // ends, it ends, and the kernel kills everything left in the namespace.
  args.push('--die-with-parent', '--hostname', 'kiln-sandbox', '--chdir', layout.agent.cwd, '--clearenv');
  for (const [name, value] of Object.entries(layout.agent.env)) args.push('--setenv', name, value);
  args.push('--', ...layout.agent.argv);
  return args;
}

/** The folders above `path`, outermost first, without the root: /var/tmp/x → /var, /var/tmp. */
function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let d = dirname(path); d !== dirname(d); d = dirname(d)) out.unshift(d);
  return out;
}

/** Where a host path inside a bound folder is, as the slot sees it; undefined when it is in none. */
export function pathInSlot(hostPath: string, binds: readonly { host: string; inside: string }[]): string | undefined {
  for (const b of binds) {
    if (hostPath.startsWith(`${b.host}/`)) return b.inside + hostPath.slice(b.host.length);
  }
  return undefined;
}
