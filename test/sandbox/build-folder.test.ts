// The build folder the exec roots live in when actions run as other users
// (engine/sandbox/build-folder.ts): made safely in a folder every local user
// can write, refused when someone else got there first, and what lets the
// default setup (data folder under root's 0700 home) run actions as the
// action user with the data folder closed to 0700.
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../engine/config-load';
import { NOBODY, decideActionUser } from '../../engine/sandbox/action-user';
import { buildFolderPath, prepareBuildFolder, sameFileSystem } from '../../engine/sandbox/build-folder';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { planInputTree } from '../../engine/worker/input-tree';
import { stageInputs } from '../../engine/worker/stage-inputs';
import { putTree } from '../worker/tree-builder';
import { startTestEngine } from '../helpers/engine';
import { executeRequest, responseOf, uploadAction } from '../execution/harness';

const isRoot = process.getuid?.() === 0;
const scratch = mkdtempSync(join(tmpdir(), 'kiln-build-folder-'));
chmodSync(scratch, 0o1777);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const self = process.getuid?.() ?? 0;

describe('the build folder', () => {
  it('is one per Kiln user and data folder', () => {
    const a = buildFolderPath('/srv/a/kiln', 0, '/var/tmp');
    expect(a).toMatch(/^\/var\/tmp\/kiln-build-0-[0-9a-f]{12}$/);
    expect(buildFolderPath('/srv/a/kiln/', 0, '/var/tmp')).toBe(a);
    expect(buildFolderPath('/srv/b/kiln', 0, '/var/tmp')).not.toBe(a);
    expect(buildFolderPath('/srv/a/kiln', 1000, '/var/tmp')).not.toBe(a);
  });

  it('is made, or taken back when it is Kiln\'s own, and left 0711', () => {
    const path = join(scratch, 'fresh');
    prepareBuildFolder(path, self);
    expect(statSync(path).mode & 0o7777).toBe(0o711);
    chmodSync(path, 0o700);
    prepareBuildFolder(path, self);
    expect(statSync(path).mode & 0o7777).toBe(0o711);
  });

  it('is refused when it is a symlink, not a folder, or writable by others', () => {
    const target = join(scratch, 'elsewhere');
    mkdirSync(target);
    const link = join(scratch, 'planted-link');
    symlinkSync(target, link);
    expect(() => prepareBuildFolder(link, self)).toThrow(ConfigError);
    expect(() => prepareBuildFolder(link, self)).toThrow(/is a symlink.*another local user/);
    // The symlink's target was not opened up.
    expect(lstatSync(target).mode & 0o777).not.toBe(0o711);
    const open = join(scratch, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(() => prepareBuildFolder(open, self)).toThrow(/writable by others/);
  });

  it.skipIf(!isRoot)(`is refused when another user made it first${isRoot ? '' : ' (skipped: making a folder of another user\'s needs root)'}`, () => {
    const theirs = join(scratch, 'theirs');
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, NOBODY.uid, NOBODY.gid);
    expect(() => prepareBuildFolder(theirs, 0)).toThrow(/belongs to uid 65534, not to Kiln \(uid 0\)/);
  });

  it('lets the action user reach its exec roots when the data folder is under a folder closed to it', () => {
    const home = join(scratch, 'root-home');
    mkdirSync(home, { mode: 0o700 });
    const dataDir = join(home, '.local', 'share', 'kiln');
    // The data folder itself would stop auto (the old layout); the build folder under /var/tmp does not.
    expect(decideActionUser('auto', { uid: 0, lookup: () => undefined, dataDir }).user).toBeUndefined();
    expect(decideActionUser('auto', { uid: 0, lookup: () => undefined, buildDir: buildFolderPath(dataDir, 0) }).user).toBeDefined();
  });
});

const shm = '/dev/shm';
const otherFs = existsSync(shm) && !sameFileSystem(shm, scratch);

describe.skipIf(!otherFs)(`exec roots on another file system than the CAS${otherFs ? '' : ' (skipped: /dev/shm is missing or on the same file system as the temp folder)'}`, () => {
  it('are told apart, and get copies of the inputs where hard links cannot go', async () => {
    expect(sameFileSystem(scratch, scratch)).toBe(true);
    const casDir = mkdtempSync(join(shm, 'kiln-cas-'));
    try {
      const store = await DiskBlobStore.open({ dir: casDir, budgetBytes: 1024 ** 3 });
      const root = await putTree(store, { 'a.txt': 'one', sub: { 'b.txt': 'two' } });
      const plan = await planInputTree(store, root);
      const execRoot = join(scratch, 'exec-root-exdev');
      const staged = await stageInputs(store, plan, execRoot);
      expect(staged.linked).toEqual([]);
      expect(staged.copied).toBe(2);
      expect(readFileSync(join(execRoot, 'sub', 'b.txt'), 'utf8')).toBe('two');
      // A copy, read-only like a link would be.
      expect(statSync(join(execRoot, 'a.txt')).nlink).toBe(1);
      expect(statSync(join(execRoot, 'a.txt')).mode & 0o777).toBe(0o444);
      await store.close();
    } finally {
      rmSync(casDir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!isRoot)(`the default setup as root${isRoot ? '' : ' (skipped: switching users needs Kiln to run as root)'}`, () => {
  it('runs actions as the action user although the data folder is under a 0700 home, and closes the data folder to 0700', async () => {
    const home = join(scratch, 'root-home-engine');
    mkdirSync(home, { mode: 0o700 });
    const dataDir = join(home, '.local', 'share', 'kiln');
    const t = await startTestEngine({ config: { dataDir, sandbox: 'off', actionUser: 'auto' } });
    try {
      const digest = await uploadAction(t.clients, { argv: ['/bin/sh', '-c', 'id -u; pwd'], doNotCache: true, salt: 'default-setup' });
      const ops = await t.clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true }));
      const response = responseOf(ops.at(-1)!);
      const [uid, cwd] = Buffer.from(response.result?.stdoutRaw ?? []).toString().trim().split('\n');
      expect(Number(uid)).not.toBe(0);
      expect(cwd.startsWith(`${buildFolderPath(dataDir, 0)}/`)).toBe(true);
      expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    } finally {
      await t.stop();
    }
    // Not left behind in /var/tmp.
    expect(() => statSync(buildFolderPath(dataDir, 0))).toThrow();
  });
});
