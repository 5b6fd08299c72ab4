// Exec roots removed after their action has answered. Removing one is a walk
// and an unlink or rmdir per entry on another thread (tree-remover.ts): 1.9 ms
// at the median for a one-input genrule here, which Bazel waited for on every
// action while nothing it needed was left in the folder. The removals go on
// behind the answers, bounded: when too many are behind, the next answer waits
// for its own removal, so a disk slower than the actions never fills up with
// exec roots.
//
// With `defer`, removals also wait for a quiet moment: while actions keep
// finishing, their exec roots are set aside, and they are removed once none has
// finished for `quietMs` (between two builds, during a long action), or at once
// for the oldest when more than `maxRoots` exec roots or `maxBytes` of outputs
// are set aside. Removing folders while other actions make theirs made each of
// those mkdirs several times dearer on ext4 here (README: performance notes).

/** Exec roots being removed at once before an action's answer waits for its own removal. */
export const MAX_PENDING_REMOVALS = 32;

export interface DeferredRemovalLimits {
  /** Removals start once no exec root was added for this long. */
  quietMs: number;
  /** At most this many exec roots wait; past it the oldest are removed at once. */
  maxRoots: number;
  /**
   * At most this many bytes of declared outputs (copies of what is in the store) wait in
   * them. Files an action leaves in its exec root besides its outputs are not counted: the
   * executor does not walk the tree to size it.
   */
  maxBytes: number;
}

/** A second of quiet, 256 exec roots, 256 MiB of outputs. */
export const DEFAULT_DEFERRED_REMOVAL_LIMITS: DeferredRemovalLimits = { quietMs: 1_000, maxRoots: 256, maxBytes: 256 * 1024 ** 2 };

export class BackgroundRemovals {
  private readonly pending = new Set<Promise<void>>();
  /** Exec roots set aside until a quiet moment, oldest first. */
  private readonly deferred: { path: string; bytes: number }[] = [];
  private deferredBytes = 0;
  private quietTimer: NodeJS.Timeout | undefined;

  /**
   * @param remove removes one tree and never rejects (it reports its own failures).
   * @param defer without it every removal starts at once.
   */
  constructor(
    private readonly remove: (path: string) => Promise<void>,
    private readonly maxPending = MAX_PENDING_REMOVALS,
    private readonly defer?: DeferredRemovalLimits,
  ) {}

  /**
   * Removes `path` (holding `outputBytes` of outputs) behind the answer: resolves at once,
   * or once its own removal (or an older one's it had to start) is over when too many are behind.
   */
  async add(path: string, outputBytes = 0): Promise<void> {
    if (!this.defer) return this.start(path);
    this.deferred.push({ path, bytes: outputBytes });
    this.deferredBytes += outputBytes;
    const overdue: Promise<void>[] = [];
    while (this.deferred.length > this.defer.maxRoots || (this.deferredBytes > this.defer.maxBytes && this.deferred.length > 0)) {
      overdue.push(this.startOldest());
    }
    clearTimeout(this.quietTimer);
    this.quietTimer = undefined;
    if (this.deferred.length > 0) {
      this.quietTimer = setTimeout(() => this.startAll(), this.defer.quietMs);
      this.quietTimer.unref(); // a clean close removes what is left (settled)
    }
    await Promise.all(overdue);
  }

  /** Exec roots still to be removed: set aside or being removed. */
  get size(): number {
    return this.pending.size + this.deferred.length;
  }

  /** Starts every removal set aside, then resolves once every removal (and any started meanwhile) is over. */
  async settled(): Promise<void> {
    this.startAll();
    while (this.pending.size > 0) {
      await Promise.all(this.pending);
      this.startAll();
    }
  }

  private startAll(): void {
    clearTimeout(this.quietTimer);
    this.quietTimer = undefined;
    while (this.deferred.length > 0) void this.startOldest();
  }

  private startOldest(): Promise<void> {
    const next = this.deferred.shift()!;
    this.deferredBytes -= next.bytes;
    return this.start(next.path);
  }

  /** Starts removing `path`; resolves at once, or once it is removed when too many are behind. */
  private start(path: string): Promise<void> {
    const removal: Promise<void> = this.remove(path).finally(() => this.pending.delete(removal));
    this.pending.add(removal);
    return this.pending.size > this.maxPending ? removal : Promise.resolve();
  }
}
