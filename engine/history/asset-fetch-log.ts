// The last few hundred Remote Asset fetches, for the dashboard: which URLs a build
// asked Kiln for, whether they came from the CAS or were downloaded, and how long
// each took. Memory only; the CAS and assets.json hold what matters across restarts.
import type { AssetFetchRecord } from '../common/api-types';
import type { EventBus } from '../events/event-bus';

const DEFAULT_CAPACITY = 500;

export class AssetFetchLog {
  private readonly records: AssetFetchRecord[] = [];

  constructor(private readonly capacity = DEFAULT_CAPACITY) {}

  /** Starts recording; returns the unsubscribe. */
  attach(bus: EventBus): () => void {
    return bus.on('asset.fetched', ({ type: _type, ...record }) => {
      this.records.push(record);
      if (this.records.length > this.capacity) this.records.shift();
    });
  }

  /** Newest first; only one invocation's when `invocation` is given. */
  list(invocation?: string): AssetFetchRecord[] {
    const all = invocation ? this.records.filter((r) => r.toolInvocationId === invocation) : this.records;
    return [...all].reverse();
  }
}
