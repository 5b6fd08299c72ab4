// SyncBudget: synchronous calls in batches, with a turn of the event loop between them.
import { describe, expect, it } from 'vitest';
import { SyncBudget } from '../../engine/util/sync-batches';

describe('SyncBudget', () => {
  it('lets the event loop run once per batch of calls, and not in between', async () => {
    const budget = new SyncBudget(10);
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const seen: number[] = [];
    for (let call = 1; call <= 35; call++) {
      await budget.spent();
      seen.push(turns);
    }
    ticking = false;
    // Calls 1-9 ran before any turn; the 10th, 20th and 30th each waited for one.
    expect(seen.slice(0, 9).every((t) => t === 0)).toBe(true);
    expect(seen[9]).toBeGreaterThanOrEqual(1);
    expect(seen[34]).toBe(seen[29]);
    expect(seen[29]).toBeGreaterThanOrEqual(3);
  });
});
