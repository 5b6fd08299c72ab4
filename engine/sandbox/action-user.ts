// Who actions run as. When Kiln runs as root, an action run as root could
// rewrite the CAS, the action cache or the tokens even with the sandbox off;
// run as a user of its own it cannot (`auto`: a uid of its own per action,
// from action-uids; or one named user for all): its exec root's folders are handed to
// that user, while the inputs hard-linked from the CAS stay Kiln's (0444),
// and Kiln's data folder is closed to everyone but Kiln (data-dir-access.ts).
// Without root Kiln cannot switch users: actions then run as Kiln's own user,
// hard-linked inputs are read-only (0444) and the tamper check after each
// action drops from the CAS any blob whose inode the action changed anyway.
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../config-load';
import type { UidRange } from './action-identities';
import { DEFAULT_BLOCK_SIZE, DEFAULT_UID_SPAN } from './uid-claims';

export interface ActionUser {
  uid: number;
  gid: number;
  /** For logs and /api/status: "nobody (65534:65534)". */
  label: string;
}

export interface ActionUserDecision {
  /**
   * Undefined: actions run as Kiln's own user. With `uids`, a label for the
   * range and nobody as a stand-in for the checks made at start (bubblewrap's
   * trial, the folders above the exec roots): any unprivileged uid answers
   * them alike, and no Kiln sweeps nobody's processes, as another Kiln
   * starting at the same time might sweep the range's own uids.
   */
  user?: ActionUser;
  /**
   * Each running action as a uid (and gid) of its own (action-identities.ts):
   * from this range, or, 'default', from a block of DEFAULT_UID_SPAN claimed at start (uid-claims.ts).
   */
  uids?: UidRange | 'default';
  /** In words for the log and the dashboard. */
  reason: string;
}

/** nobody/nogroup, on every Linux. */
export const NOBODY = { uid: 65534, gid: 65534 };

export interface ActionUserOptions {
  /**
   * The folder the exec roots live in (build-folder.ts; in older setups the
   * data folder): the action user must be able to pass through every folder
   * above it.
   */
  buildDir?: string;
  /** The same check for a data folder that holds the exec roots (kept for callers that pass it). */
  dataDir?: string;
  /** Kiln's own uid; process.getuid() by default (undefined on Windows). */
  uid?: number;
  /** Looks a user name up (uid, primary gid); /etc/passwd by default. */
  lookup?: (name: string) => { uid: number; gid: number } | undefined;
  /** The range `auto` hands out as root (action-uids); a block of DEFAULT_UID_SPAN by default. */
  uids?: UidRange;
  /** Local accounts and groups whose id is in a range ("user alice (1000)"); /etc/passwd and /etc/group by default. */
  accountsIn?: (range: UidRange) => string[];
}

/** Decides from the `action-user` setting (auto | none | name | uid[:gid]), and checks the user can reach the exec roots. */
export function decideActionUser(setting: string, opts: ActionUserOptions = {}): ActionUserDecision {
  const decision = chooseActionUser(setting, opts);
  const user = decision.user;
  const execRoots = opts.buildDir ?? opts.dataDir;
  const closed = user && execRoots ? closedAncestor(execRoots, user) : undefined;
  if (!user || !closed) return decision;
  const why = `${closed} (above ${execRoots}, where the exec roots live) is closed to ${user.label}, so it could not reach them`;
  if (setting === 'auto') return { reason: `Kiln is root, but ${why}: actions run as root; choose a data folder others can pass through (e.g. --data-dir /var/lib/kiln) to run them as users of their own` };
  throw new ConfigError(`action-user: ${setting}: ${why}; choose a data folder others can pass through (e.g. --data-dir /var/lib/kiln), or action-user: none`);
}

/** The nearest existing folder above `dataDir` that `user` cannot pass through, if any. */
export function closedAncestor(dataDir: string, user: { uid: number; gid: number }): string | undefined {
  let dir = dirname(resolve(dataDir));
  for (;;) {
    try {
      const st = statSync(dir);
      const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
      if (!(st.mode & bit)) return dir;
    } catch {
      // Not made yet: Kiln makes it (0755).
    }
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

function chooseActionUser(setting: string, opts: ActionUserOptions): ActionUserDecision {
  const self = 'uid' in opts ? opts.uid : process.getuid?.();
  const lookup = opts.lookup ?? lookupPasswd;
  if (setting === 'none') return { reason: 'action-user: none: actions run as Kiln\'s own user' };
  if (self !== 0) {
    const notRoot =
      'Kiln is not root, so actions run as its own user: hard-linked inputs are read-only (0444) and an action that changes one anyway is caught after it ends and the blob dropped from the CAS';
    if (setting === 'auto') return { reason: notRoot };
    throw new ConfigError(`action-user: ${setting} needs Kiln to run as root (it runs as uid ${self ?? 'unknown'}); use action-user: auto or none`);
  }
  if (setting === 'auto') {
    const range = opts.uids ?? DEFAULT_UID_SPAN;
    const taken = (opts.accountsIn ?? accountsInRange)(range);
    const span = `${range.first}-${range.last}`;
    if (taken.length) {
      throw new ConfigError(`action-uids: ${span} holds local ${taken.slice(0, 3).join(', ')}; actions must not share ids with anyone: choose a free range with --action-uids FIRST-LAST`);
    }
    const from = opts.uids ? span : `a block of ${DEFAULT_BLOCK_SIZE} in ${span}`;
    const label = `a uid of its own per action (${from})`;
    return { user: { ...NOBODY, label }, uids: opts.uids ?? 'default', reason: `Kiln is root: each action runs as a uid and gid of its own from ${from}` };
  }
  const numeric = /^(\d+)(?::(\d+))?$/.exec(setting);
  if (numeric) {
    const uid = Number(numeric[1]);
    const gid = numeric[2] !== undefined ? Number(numeric[2]) : uid;
    if (uid === 0) throw new ConfigError('action-user: 0 is root, which is what the action user is there to avoid; use none to run actions as root');
    return { user: { uid, gid, label: `${uid}:${gid}` }, reason: `action-user: ${setting}` };
  }
  const found = lookup(setting);
  if (!found) throw new ConfigError(`action-user: there is no user named ${setting} on this machine; create it, or give uid:gid`);
  if (found.uid === 0) throw new ConfigError(`action-user: ${setting} is root (uid 0); name an unprivileged user, or none`);
  return { user: { ...found, label: `${setting} (${found.uid}:${found.gid})` }, reason: `action-user: ${setting}` };
}

/** The accounts in /etc/passwd and groups in /etc/group whose id falls in `range`. */
export function accountsInRange(range: UidRange, files = { passwd: '/etc/passwd', group: '/etc/group' }): string[] {
  const found: string[] = [];
  for (const [kind, file] of [['user', files.passwd], ['group', files.group]] as const) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const [name, , id] = line.split(':');
      const n = Number(id);
      if (name && /^\d+$/.test(id ?? '') && n >= range.first && n <= range.last) found.push(`${kind} ${name} (${n})`);
    }
  }
  return found;
}

/** A user's uid and primary gid from /etc/passwd. */
export function lookupPasswd(name: string, passwd = '/etc/passwd'): { uid: number; gid: number } | undefined {
  let text = '';
  try {
    text = readFileSync(passwd, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && /^\d+$/.test(uid ?? '') && /^\d+$/.test(gid ?? '')) return { uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}
