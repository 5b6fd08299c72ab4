// Which store inodes running actions hold hard links to, shared by every
// action of one executor. Each action checks its own links after its run, but
// that alone misses an action that links an inode *after* another action
// corrupted it. The ledger closes that gap: the first holder's stats are the
// baseline every later holder compares against. (Holders that linked before a
// change need no help: it moves the inode's ctime, or later the unlink that
// drops the blob does, and a moved ctime makes the check re-hash.)

export interface InodeStats {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  mode: number;
}

interface Entry {
  baseline: InodeStats;
  holders: number;
}

const keyOf = (s: Pick<InodeStats, 'dev' | 'ino'>) => `${s.dev}:${s.ino}`;

export class LinkLedger {
  private readonly inodes = new Map<string, Entry>();

  /** Registers one more link to the inode; returns the stats it must still have when checked. */
  hold(stats: InodeStats): InodeStats {
    const key = keyOf(stats);
    const entry = this.inodes.get(key);
    if (entry) {
      entry.holders++;
      return entry.baseline;
    }
    this.inodes.set(key, { baseline: stats, holders: 1 });
    return stats;
  }

  /** Whether some action holds a link to the inode now. */
  holds(stats: Pick<InodeStats, 'dev' | 'ino'>): boolean {
    return this.inodes.has(keyOf(stats));
  }

  release(stats: Pick<InodeStats, 'dev' | 'ino'>): void {
    const key = keyOf(stats);
    const entry = this.inodes.get(key);
    if (entry && --entry.holders <= 0) this.inodes.delete(key);
  }

  /** Inodes currently held (for tests and leak checks). */
  get size(): number {
    return this.inodes.size;
  }
}
