import { describe, expect, it } from 'vitest';
import type { ActionSummary } from '../../../engine/common/api-types';
import { buildTimeline, timeTicks } from './timeline';

const base: ActionSummary = { id: '', state: 'finished', cached: false, stage: 'finished', queuedAt: 0, instance: '', actionDigest: 'x/1' };
const act = (over: Partial<ActionSummary>): ActionSummary => ({ ...base, ...over });

describe('buildTimeline', () => {
  it('puts runs on their slot lanes with the queue wait before them, hits and waiting actions on lanes of their own', () => {
    const t = buildTimeline(
      [
        act({ id: 'b', slot: 1, queuedAt: 1000, startedAt: 1500, finishedAt: 3000, outcome: 'success' }),
        act({ id: 'a', slot: 0, queuedAt: 1000, startedAt: 1000, finishedAt: 2000, outcome: 'failure' }),
        act({ id: 'r', slot: 0, state: 'running', stage: 'running', queuedAt: 2000, startedAt: 2500 }),
        act({ id: 'q', state: 'queued', stage: 'queued', queuedAt: 4000 }),
        act({ id: 'h', cached: true, outcome: 'cached', queuedAt: 500, finishedAt: 500 }),
      ],
      5000,
    );
    expect(t.start).toBe(500);
    expect(t.end).toBe(5000);
    expect(t.lanes.map((l) => [l.label, l.bars.map((b) => b.id)])).toEqual([
      ['Slot 1', ['a', 'r']],
      ['Slot 2', ['b']],
      ['Queued', ['q']],
      ['Cache hits', ['h']],
    ]);
    // A running action's bar grows to now.
    expect(t.lanes[0].bars[1]).toMatchObject({ startedAt: 2500, end: 5000 });
    expect(t.lanes[1].bars[0]).toMatchObject({ queuedAt: 1000, startedAt: 1500 });
  });

  it('is empty but well-formed without actions', () => {
    expect(buildTimeline([], 42)).toEqual({ start: 42, end: 42, lanes: [] });
  });
});

describe('timeTicks', () => {
  it('picks round steps inside the range', () => {
    expect(timeTicks(0, 60_000)).toEqual([0, 10_000, 20_000, 30_000, 40_000, 50_000, 60_000]);
    const ticks = timeTicks(1_234, 9_876);
    expect(ticks.every((t) => t >= 1_234 && t <= 9_876 && t % 1000 === 0)).toBe(true);
  });
});
