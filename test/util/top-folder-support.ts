// Whether this file system takes ext4's 'T' attribute (tests of top-folder.ts and its callers).
import { execFileSync } from 'node:child_process';

/** ext2/3/4 (statfs reports them alike) with chattr and lsattr present. */
export function topFolderSupport(folder: string): { ok: true } | { ok: false; why: string } {
  if (process.platform !== 'linux') return { ok: false, why: 'not Linux' };
  try {
    const type = execFileSync('stat', ['-f', '-c', '%T', folder], { encoding: 'utf8' }).trim();
    if (type !== 'ext2/ext3') return { ok: false, why: `${folder} is on ${type}, not ext4` };
    execFileSync('lsattr', ['-d', folder], { stdio: 'ignore' });
    return { ok: true };
  } catch (err) {
    return { ok: false, why: `lsattr or stat failed: ${(err as Error).message}` };
  }
}

/** Whether lsattr shows the 'T' attribute on `folder`. */
export function hasTopFlag(folder: string): boolean {
  const flags = execFileSync('lsattr', ['-d', folder], { encoding: 'utf8' }).trim().split(/\s+/)[0]!;
  return flags.includes('T');
}
