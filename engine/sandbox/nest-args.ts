// The per-action command line in a non-root slot's sandbox: the action started
// through kiln-nest (native/kiln-nest.c), which gives it a user, mount, PID and
// IPC namespace of its own, covers `hide` with empty tmpfs, binds its exec root
// back at its own path and mounts a /proc that shows only its own processes.
// A pure function, so the rules can be read and tested in one place.
import { isWithin } from './bwrap-args';

export interface NestLaunch {
  /** The kiln-nest binary, as the slot sees it. */
  helper: string;
  /** Folders the action must not see (the build folder, the agent's folder, Kiln's code outside the system). */
  hide: readonly string[];
  /** The action's exec root: the one folder of `hide` it gets back. */
  execRoot: string;
  /** Nice value set before the action starts (polite actions), so nothing of it ever runs above it. */
  nice?: number;
  /** Processes and threads the action may have at once (RLIMIT_NPROC in its own user namespace: see kiln-nest.c). */
  processes?: number;
  /**
   * Bytes of resident memory the action's processes may hold together, watched by kiln-nest
   * (no cgroup limits memory here): over it, the action is killed with a line in its stderr.
   */
  memoryBytes?: number;
  /** cgroup.procs files (as the slot sees them) kiln-nest joins before the action's namespaces, a cgroup one among them. */
  cgroups?: readonly string[];
  argv: readonly string[];
}

export function nestArgs(l: NestLaunch): string[] {
  const args = [l.helper];
  if (l.nice !== undefined) args.push('--nice', String(l.nice));
  if (l.processes !== undefined) args.push('--nproc', String(l.processes));
  if (l.memoryBytes !== undefined) args.push('--memory', String(l.memoryBytes));
  for (const file of l.cgroups ?? []) args.push('--cgroup', file);
  // One tmpfs per outermost folder: a folder inside another is covered with it, and could not be mounted on.
  const outermost = [...new Set(l.hide)].filter((dir, _, all) => !all.some((other) => other !== dir && isWithin(dir, other))).sort();
  for (const dir of outermost) args.push('--hide', dir);
  args.push('--keep', l.execRoot, '--', ...l.argv);
  return args;
}
