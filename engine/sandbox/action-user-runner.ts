// Runs each action as the action user (action-user.ts): hands the exec
// root's folders to that user, so the action can create its outputs and
// scratch files, and asks the inner runner to start the process under that
// uid/gid. Files are left as staged: inputs hard-linked from the CAS and
// copies stay Kiln's and read-only, so the action cannot write through them.
// Works around the sandbox (bwrap then starts unprivileged, in a user
// namespace) as well as around the plain process runner.
import { chmod, lchown, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ActionSignal, RunExit, RunRequest, Runner, RunnerCapabilities, RunnerReadiness } from '../execution/runner';
import type { ActionUser } from './action-user';

export class ActionUserRunner implements Runner {
  constructor(
    private readonly inner: Runner,
    private readonly user: ActionUser,
  ) {}

  async run(req: RunRequest): Promise<RunExit> {
    await chownFolders(req.execRoot, this.user);
    // Its own and nobody else's: another action (another user, or one that guessed the name) cannot look in.
    await chmod(req.execRoot, 0o700);
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

/** lchown of `dir` and every folder below it (never a file, never through a symlink). */
async function chownFolders(dir: string, user: ActionUser): Promise<void> {
  await lchown(dir, user.uid, user.gid);
  const entries = await readdir(dir, { withFileTypes: true });
  await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => chownFolders(join(dir, e.name), user)));
}
