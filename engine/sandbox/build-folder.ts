// Where exec roots live when actions run as other users. The action user must
// pass through every folder above its exec root, and Kiln's data folder (by
// default under root's own 0700 home) is no place for that: so the exec roots
// go to a folder of their own, /var/tmp/kiln-build-<uid>-<hash of the data
// folder>, and the data folder is closed to everyone but Kiln (0700).
//
// /var/tmp is writable by every local user, so another user could make that
// name first (a folder they own, or a symlink to somewhere Kiln would then
// write): it is made 0700, then checked (a real folder, Kiln's, nobody else
// may write it), and only then opened to 0711 (others may pass, not list).
// The sticky bit on /var/tmp stops anyone else renaming or removing it later.
// /var/tmp is on the same file system as /var/lib, /root and /home on most
// hosts, so inputs are still hard links from the CAS; where it is not, they
// are copies (stage-inputs.ts falls back on EXDEV) and Kiln says so at start.
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from '../config-load';

/** The parent of the build folders: /var/tmp where there is one (it outlives a reboot less often than it is on another disk). */
export function buildFolderBase(): string {
  try {
    if (statSync('/var/tmp').isDirectory()) return '/var/tmp';
  } catch {
    // No /var/tmp (a minimal container): the OS's temp folder.
  }
  return tmpdir();
}

/** The build folder of the Kiln that runs as `uid` on `dataDir`: one per data folder, so two Kilns never share one. */
export function buildFolderPath(dataDir: string, uid: number, base = buildFolderBase()): string {
  const hash = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12);
  return join(base, `kiln-build-${uid}-${hash}`);
}

/**
 * Makes (or takes back) the build folder at `path` for `owner`, refusing one
 * that is not a plain folder of `owner`'s that only `owner` may write; leaves
 * it 0711. A refusal is a ConfigError: one line at start, exit code 2.
 */
export function prepareBuildFolder(path: string, owner: number): void {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new ConfigError(`cannot make the build folder ${path}: ${(err as Error).message}`);
  }
  const st = lstatSync(path);
  const refuse = (why: string) =>
    new ConfigError(`the build folder ${path} ${why}, so another local user may have made it; remove it (or find who made it) and start again`);
  if (st.isSymbolicLink()) throw refuse('is a symlink');
  if (!st.isDirectory()) throw refuse('is not a folder');
  if (st.uid !== owner) throw refuse(`belongs to uid ${st.uid}, not to Kiln (uid ${owner})`);
  if (st.mode & 0o022) throw refuse(`is writable by others (mode ${(st.mode & 0o777).toString(8)})`);
  chmodSync(path, 0o711);
}

/** Whether hard links can go from `a` to `b` (both exist): the same device. */
export function sameFileSystem(a: string, b: string): boolean {
  return statSync(a).dev === statSync(b).dev;
}
