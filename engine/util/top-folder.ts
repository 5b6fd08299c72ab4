// Marks a folder as the top of unrelated folder trees for ext4's inode
// allocator (the 'T' attribute, FS_TOPDIR_FL; see chattr(1)). Without it ext4
// puts a new folder in or near its parent's block group; once that group is
// crowded, each mkdir searches for room (our reading of the allocator). In a
// plain Node loop on this machine, mkdir under /var/tmp (where the build folder
// of a root Kiln lives) took 140–500 µs at the median, against ~25 µs under
// /tmp and /root on the same disk; exec-root-like trees made alternately under
// a plain and a 'T' folder in /var/tmp took 1.2–2.0 ms against 0.24–0.26 ms
// (three runs). Exec roots are unrelated trees made and removed per action,
// which is the case 'T' is for. Under Bazel it shows only while that region is
// crowded (README: where on the disk exec roots are made).
//
// Node has no ioctl, so this runs chattr (e2fsprogs, on every Debian and most
// Linux systems) once. A file system without the attribute (tmpfs, xfs,
// btrfs) or a system without chattr only misses the hint: nothing else changes.
import { execFile } from 'node:child_process';

export type TopFolderResult = { marked: true } | { marked: false; why: string };

/** Sets the 'T' attribute on `folder`; never rejects. */
export function markTopFolder(folder: string, timeoutMs = 5_000): Promise<TopFolderResult> {
  if (process.platform !== 'linux') return Promise.resolve({ marked: false, why: 'not Linux' });
  return new Promise((resolve) => {
    execFile('chattr', ['+T', '--', folder], { timeout: timeoutMs }, (err, _stdout, stderr) => {
      if (!err) return resolve({ marked: true });
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'chattr is not installed' : String(stderr).trim() || err.message;
      resolve({ marked: false, why });
    });
  });
}
