// Exec roots removed after their action has answered. Removing one is a walk
// and an unlink or rmdir per entry on another thread (tree-remover.ts): 1.9 ms
// at the median for a one-input genrule here, which Bazel waited for on every
// action while nothing it needed was left in the folder. The removals go on
// behind the answers, bounded: when too many are behind, the next answer waits
// for its own removal, so a disk slower than the actions never fills up with
// exec roots.

/** Exec roots being removed at once before an action's answer waits for its own removal. */
export const MAX_PENDING_REMOVALS = 32;

export class BackgroundRemovals {
  private readonly pending = new Set<Promise<void>>();

  /** @param remove removes one tree and never rejects (it reports its own failures). */
  constructor(
    private readonly remove: (path: string) => Promise<void>,
    private readonly maxPending = MAX_PENDING_REMOVALS,
  ) {}

  /** Starts removing `path`; resolves at once, or once it is removed when too many removals are behind. */
  async add(path: string): Promise<void> {
    const removal: Promise<void> = this.remove(path).finally(() => this.pending.delete(removal));
    this.pending.add(removal);
    if (this.pending.size > this.maxPending) await removal;
  }

  /** Exec roots still being removed. */
  get size(): number {
    return this.pending.size;
  }

  /** Resolves once every removal started so far (and any started meanwhile) is over. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }
}
