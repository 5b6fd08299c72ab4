// ActionUserRunner hands the exec root's folders to the action user before the
// inner runner starts the process: the folders the executor lists, or (without
// a list) every folder it finds, never a file and never through a symlink.
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunExit, RunRequest, Runner } from '../../engine/execution/runner';
import { FileLogSink } from '../../engine/execution/log-sink';
import { NOBODY } from '../../engine/sandbox/action-user';
import { ActionUserRunner } from '../../engine/sandbox/action-user-runner';
import { FixedIdentity } from '../../engine/sandbox/action-identities';

const isRoot = process.getuid?.() === 0;
const root = mkdtempSync(join(tmpdir(), 'kiln-action-user-runner-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Records what it was asked to run, and the owners of the exec root's entries at that moment. */
class RecordingRunner implements Runner {
  seen: RunRequest | undefined;
  run(req: RunRequest): Promise<RunExit> {
    this.seen = req;
    return Promise.resolve({ exitCode: 0, timedOut: false, killed: false });
  }
  kill(): void {}
  ready() {
    return { ready: true };
  }
  capabilities() {
    return { name: 'recording' } as ReturnType<Runner['capabilities']>;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

let seq = 0;
function execRoot(): string {
  const dir = join(root, 'data', 'build', `a${seq++}`);
  mkdirSync(join(dir, 'bazel-out/bin'), { recursive: true });
  mkdirSync(join(dir, 'unlisted'));
  writeFileSync(join(dir, 'bazel-out/input.txt'), 'x');
  mkdirSync(join(root, 'outside'), { recursive: true });
  symlinkSync(join(root, 'outside'), join(dir, 'link'));
  return dir;
}

const owner = (path: string) => lstatSync(path).uid;

async function runIn(dir: string, stagedFolders?: string[]): Promise<RecordingRunner> {
  const inner = new RecordingRunner();
  const runner = new ActionUserRunner(inner, new FixedIdentity(NOBODY));
  const log = new FileLogSink(join(root, `log-${seq++}`));
  await runner.run({ id: 'x', argv: ['true'], env: {}, execRoot: dir, workingDirectory: '', stdout: log, stderr: log, timeoutMs: 0, stagedFolders });
  return inner;
}

describe.skipIf(!isRoot)(`ActionUserRunner${isRoot ? '' : ' (skipped: lchown to another user needs root)'}`, () => {
  it('hands over exactly the folders the executor lists, and runs as the action user', async () => {
    const dir = execRoot();
    const inner = await runIn(dir, ['', 'bazel-out', 'bazel-out/bin']);
    expect(inner.seen?.runAs).toEqual({ uid: NOBODY.uid, gid: NOBODY.gid });
    for (const f of ['', 'bazel-out', 'bazel-out/bin']) expect(owner(join(dir, f))).toBe(NOBODY.uid);
    // Not listed: left alone (the list is the executor's promise that nothing else is there).
    expect(owner(join(dir, 'unlisted'))).toBe(0);
    expect(owner(join(dir, 'bazel-out/input.txt'))).toBe(0);
  });

  it('without a list, finds every folder itself, but no file and nothing behind a symlink', async () => {
    const dir = execRoot();
    await runIn(dir);
    for (const f of ['', 'bazel-out', 'bazel-out/bin', 'unlisted']) expect(owner(join(dir, f))).toBe(NOBODY.uid);
    expect(owner(join(dir, 'bazel-out/input.txt'))).toBe(0);
    expect(owner(join(root, 'outside'))).toBe(0);
  });
});
