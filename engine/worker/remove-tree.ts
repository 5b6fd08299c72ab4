// Removes an exec root after its action, with as few file system calls as the
// tree allows. Node's `rm -r` (its rimraf) lstats every entry and first tries
// rmdir on every directory, failing with ENOTEMPTY (an Error object built per
// folder) before it reads it; here one readdir with file types says what each
// entry is, so a file costs one unlink and a folder one readdir and one rmdir.
// The calls are synchronous, in bounded batches (util/sync-batches.ts): an
// exec root is a few small folders. Symlinks are unlinked, never followed.
import { readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { chmod, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SyncBudget } from '../util/sync-batches';

/**
 * rm -rf of `path`. Falls back to making folders writable and Node's own
 * `rm` when the fast walk fails (a read-only folder the action left behind
 * when not running as root, an entry that changed type meanwhile).
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await removeDir(Buffer.from(path), new SyncBudget());
  } catch {
    // Whatever stopped the walk (missing, not a folder, not writable): the thorough way.
    await makeWritable(path);
    await rm(path, { recursive: true, force: true });
  }
}

const SLASH = Buffer.from('/');

/** Names as bytes: an action may leave names that are not UTF-8, which a string would mangle. */
async function removeDir(dir: Buffer, budget: SyncBudget): Promise<void> {
  const entries = readdirSync(dir, { withFileTypes: true, encoding: 'buffer' });
  await budget.spent();
  for (const e of entries) {
    const path = Buffer.concat([dir, SLASH, e.name]);
    if (e.isDirectory()) {
      await removeDir(path, budget);
    } else {
      unlinkSync(path);
      await budget.spent();
    }
  }
  rmdirSync(dir);
  await budget.spent();
}

async function makeWritable(path: string): Promise<void> {
  try {
    await chmod(path, 0o755);
    for (const e of await readdir(path, { withFileTypes: true })) if (e.isDirectory()) await makeWritable(join(path, e.name));
  } catch {
    /* best effort */
  }
}
