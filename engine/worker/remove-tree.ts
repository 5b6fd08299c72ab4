// Removes an exec root after its action, with as few file system calls as the
// tree allows. Node's `rm -r` (its rimraf) lstats every entry and first tries
// rmdir on every directory, failing with ENOTEMPTY (an Error object built per
// folder) before it reads it; here one readdir with file types says what each
// entry is, so a file costs one unlink and a folder one readdir and one rmdir.
// Symlinks are unlinked, never followed. The executor removes exec roots on a
// worker thread (tree-remover.ts); this is what it falls back to.
import { chmod, readdir, rm, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Entries of one folder removed at once: enough to keep the thread pool busy, bounded for huge trees. */
const PARALLEL = 16;

/**
 * rm -rf of `path`. Falls back to making folders writable and Node's own
 * `rm` when the fast walk fails (a read-only folder the action left behind
 * when not running as root, an entry that changed type meanwhile).
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await removeDir(Buffer.from(path));
  } catch {
    // Whatever stopped the walk (missing, not a folder, not writable): the thorough way.
    await makeWritable(path);
    await rm(path, { recursive: true, force: true });
  }
}

const SLASH = Buffer.from('/');

/** Names as bytes: an action may leave names that are not UTF-8, which a string would mangle. */
async function removeDir(dir: Buffer): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true, encoding: 'buffer' });
  for (let i = 0; i < entries.length; i += PARALLEL) {
    await Promise.all(
      entries.slice(i, i + PARALLEL).map((e) => {
        const path = Buffer.concat([dir, SLASH, e.name]);
        return e.isDirectory() ? removeDir(path) : unlink(path);
      }),
    );
  }
  await rmdir(dir);
}

async function makeWritable(path: string): Promise<void> {
  try {
    await chmod(path, 0o755);
    for (const e of await readdir(path, { withFileTypes: true })) if (e.isDirectory()) await makeWritable(join(path, e.name));
  } catch {
    /* best effort */
  }
}
