// The dashboard's copy of the action list: history pages from GET /api/actions
// merged with live `action` events, newest first, bounded in size.
import type { ActionSummary } from '../../../engine/common/api-types';

export class ActionIndex {
  private byId = new Map<string, ActionSummary>();
  /** Newest first by queuedAt (then id, for a stable order). */
  private ordered: ActionSummary[] = [];

  constructor(private readonly capacity = 20_000) {}

  get size(): number {
    return this.ordered.length;
  }

  get(id: string): ActionSummary | undefined {
    return this.byId.get(id);
  }

  /** The current list. A new array after every change, so it can be compared by reference. */
  list(): readonly ActionSummary[] {
    return this.ordered;
  }

  /** Inserts or replaces actions; a later event for the same id wins unless it is older. */
  upsert(items: readonly ActionSummary[]): void {
    if (!items.length) return;
    const next = this.ordered.slice();
    for (const a of items) {
      const prev = this.byId.get(a.id);
      if (prev) {
        if (rank(prev) > rank(a)) continue; // a stale page must not undo a live "finished"
        const i = indexOf(next, prev);
        if (i >= 0 && prev.queuedAt === a.queuedAt) next[i] = a;
        else {
          if (i >= 0) next.splice(i, 1);
          next.splice(insertionPoint(next, a), 0, a);
        }
      } else {
        next.splice(insertionPoint(next, a), 0, a);
      }
      this.byId.set(a.id, a);
    }
    // Drop the oldest beyond capacity; they remain reachable through the API.
    if (next.length > this.capacity) {
      for (const old of next.splice(this.capacity)) this.byId.delete(old.id);
    }
    this.ordered = next;
  }

  clear(): void {
    this.byId.clear();
    this.ordered = [];
  }

  counts(): { queued: number; running: number; finished: number } {
    const c = { queued: 0, running: 0, finished: 0 };
    for (const a of this.ordered) c[a.state]++;
    return c;
  }
}

/** How far along an action is; events never move it backwards. */
function rank(a: ActionSummary): number {
  return a.state === 'finished' ? 2 : a.state === 'running' ? 1 : 0;
}

function newerFirst(a: ActionSummary, b: ActionSummary): number {
  return b.queuedAt - a.queuedAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

function insertionPoint(list: ActionSummary[], a: ActionSummary): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (newerFirst(list[mid], a) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function indexOf(list: ActionSummary[], a: ActionSummary): number {
  // Binary search to the right neighbourhood, then scan the few equal keys.
  let i = insertionPoint(list, a) - 1;
  while (i >= 0 && list[i].queuedAt === a.queuedAt) {
    if (list[i].id === a.id) return i;
    i--;
  }
  return list.indexOf(a);
}
