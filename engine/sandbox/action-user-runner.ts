// Runs each action as an action user (action-user.ts, action-identities.ts):
// takes an identity for it (one of its own from the uid range, or the fixed
// user), hands the exec root's folders to it and closes the exec root to
// everyone else (0700), and asks the inner runner to start the process under
// that uid/gid. Files are left as staged: inputs hard-linked from the CAS and
// copies stay Kiln's and read-only, so the action cannot write through them.
// Works around the sandbox (bwrap then starts unprivileged, in a user
// namespace) as well as around the plain process runner.
import { lchownSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ActionSignal, RunExit, RunRequest, Runner, RunnerCapabilities, RunnerReadiness } from '../execution/runner';
import type { ActionIdentity, IdentitySource } from './action-identities';
import { SyncBudget } from '../util/sync-batches';

export class ActionUserRunner implements Runner {
  constructor(
    private readonly inner: Runner,
    private readonly identities: IdentitySource,
    /** Called once the runner is closed (the uid range's claim goes with it). */
    private readonly onClose: () => void = () => {},
  ) {}

  async run(req: RunRequest): Promise<RunExit> {
    const lease = await this.identities.acquire();
    try {
      if (req.stagedFolders) await chownListed(req.execRoot, req.stagedFolders, lease);
      else await chownFolders(req.execRoot, lease);
      // Its own and nobody else's: staging made the exec root 0700 (stage-inputs.ts), and the lchown keeps the mode.
      return await this.inner.run({ ...req, runAs: { uid: lease.uid, gid: lease.gid } });
    } finally {
      // Off the action's time: the uid is free again once nothing runs as it and the exec root is Kiln's.
      void lease.release(req.execRoot);
    }
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

  /** Always: the action user is never Kiln's own (root is refused), so Kiln's read-only files are out of its reach. */
  inputsOutOfReach(): boolean {
    return true;
  }

  capabilities(): RunnerCapabilities {
    return this.inner.capabilities();
  }

  async close(): Promise<void> {
    try {
      await this.inner.close();
      // After the runner: its actions are over, so what still runs as their uids is left over.
      await this.identities.close?.();
    } finally {
      this.onClose();
    }
  }
}

/** lchown of the folders the executor says it made (nothing has run there yet, so they are all there are). */
async function chownListed(execRoot: string, folders: readonly string[], user: ActionIdentity): Promise<void> {
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
async function chownFolders(dir: string, user: ActionIdentity, budget = new SyncBudget()): Promise<void> {
  lchownSync(dir, user.uid, user.gid);
  await budget.spent();
  const entries = readdirSync(dir, { withFileTypes: true });
  await budget.spent();
  for (const e of entries) if (e.isDirectory()) await chownFolders(join(dir, e.name), user, budget);
}
