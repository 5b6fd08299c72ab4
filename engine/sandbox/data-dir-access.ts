// Closing Kiln's data folder to the action user. Actions reach their exec
// roots through it (data/build/<id>), so the folder and build/ keep only the
// search bit for others (0711: a path can be followed, nothing listed), and
// everything else at its top level (cas/, ac/, tokens, http-token, logs…) loses
// every permission for group and others: whatever is below is out of reach
// whatever its own mode (CAS blobs stay 0444, so the hard links of an action's
// inputs still read). Parts of the engine make their folders later (downloads/,
// history/), so it is checked again before each action: one readdir, and a
// chmod only for a name not seen before.
import { chmod, lstat, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export class DataDirCloser {
  private readonly closed = new Set<string>();
  private opened = false;

  /** `buildDir` is the exec roots' parent, a direct child of `dataDir`. */
  constructor(
    private readonly dataDir: string,
    private readonly buildDir = 'build',
  ) {}

  /** Applies the modes above to whatever is new at the data folder's top level. */
  async close(): Promise<void> {
    if (!this.opened) {
      await chmod(this.dataDir, 0o711);
      await mkdir(join(this.dataDir, this.buildDir), { recursive: true });
      await chmod(join(this.dataDir, this.buildDir), 0o711);
      this.opened = true;
    }
    for (const name of await readdir(this.dataDir)) {
      if (name === this.buildDir || this.closed.has(name)) continue;
      const path = join(this.dataDir, name);
      const st = await lstat(path).catch(() => undefined);
      if (!st) continue;
      if (!st.isSymbolicLink() && st.mode & 0o077) await chmod(path, st.mode & 0o7700);
      this.closed.add(name);
    }
  }
}
