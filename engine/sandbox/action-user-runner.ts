// Runs each action as the action user (action-user.ts): hands the exec
// root's folders to that user, so the action can create its outputs and
// scratch files, and asks the inner runner to start the process under that
// uid/gid. Files are left as staged: inputs hard-linked from the CAS and
// copies stay Kiln's and read-only, so the action cannot write through them.
// Works around the sandbox (bwrap then starts unprivileged, in a user
// namespace) as well as around the plain process runner.
import { lchownSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ActionSignal, RunExit, RunRequest, Runner, RunnerCapabilities, RunnerReadiness } from '../execution/runner';
import type { ActionUser } from './action-user';
import type { DataDirCloser } from './data-dir-access';
import { SyncBudget } from '../util/sync-batches';

export class ActionUserRunner implements Runner {
  constructor(
    private readonly inner: Runner,
    private readonly user: ActionUser,
    /** Kiln's data folder, closed to the action user before each action. */
    private readonly dataDir: DataDirCloser,
  ) {}

  async run(req: RunRequest): Promise<RunExit> {
    await this.dataDir.close();
    if (req.stagedFolders) await chownListed(req.execRoot, req.stagedFolders, this.user);
    else await chownFolders(req.execRoot, this.user);
    return this.inner.run({ ...req, runAs: { uid: this.user.uid, gid: this.user.gid } });
  }

  kill(id: string): void {
    this.inner.kill(id);
  }

  signal(id: string, signal: ActionSignal): boolean {
    return this.inner.signal?.(id, signal) ?? false;
  }

  warm(): Promise<void> {
    return this.inner.warm?.() ?? Promise.resolve();
  }

  ready(): RunnerReadiness {
    return this.inner.ready();
  }

  capabilities(): RunnerCapabilities {
    return this.inner.capabilities();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** lchown of the folders the executor says it made (nothing has run there yet, so they are all there are). */
async function chownListed(execRoot: string, folders: readonly string[], user: ActionUser): Promise<void> {
  const budget = new SyncBudget();
  for (const folder of folders) {
    lchownSync(join(execRoot, folder), user.uid, user.gid);
    await budget.spent();
  }
}

/**
 * lchown of `dir` and every folder below it (never a file, never through a symlink).
 * Synchronous calls in bounded batches: an exec root is a few small folders, and a
 * call through fs/promises costs two to three times its system call (util/sync-batches.ts).
 */
async function chownFolders(dir: string, user: ActionUser, budget = new SyncBudget()): Promise<void> {
  lchownSync(dir, user.uid, user.gid);
  await budget.spent();
  const entries = readdirSync(dir, { withFileTypes: true });
  await budget.spent();
  for (const e of entries) if (e.isDirectory()) await chownFolders(join(dir, e.name), user, budget);
}
