import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { markTopFolder } from '../../engine/util/top-folder';
import { topFolderSupport, hasTopFlag } from './top-folder-support';

const root = mkdtempSync(join(tmpdir(), 'kiln-top-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const support = topFolderSupport(root);

describe('markTopFolder', () => {
  it.skipIf(!support.ok)(`sets ext4's 'T' attribute on the folder${support.ok ? '' : ` (skipped: ${support.why})`}`, async () => {
    const folder = join(root, 'build');
    execFileSync('mkdir', [folder]);
    expect(hasTopFlag(folder)).toBe(false);
    expect(await markTopFolder(folder)).toEqual({ marked: true });
    expect(hasTopFlag(folder)).toBe(true);
  });

  it('says why, and does not throw, when the folder cannot be marked', async () => {
    const missing = join(root, 'no-such-folder');
    const result = await markTopFolder(missing);
    expect(result.marked).toBe(false);
    expect(result.marked ? '' : result.why).toContain(process.platform === 'linux' ? missing : 'not Linux');
  });
});
