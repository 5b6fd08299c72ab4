import { describe, expect, it } from 'vitest';
import { CHART_MS, slotChartData, withSlotPoint } from './farm';
import { LiveModel } from './live-model';
import type { FarmStatus } from '../../../engine/common/farm-modes';

const farm = (over: Partial<FarmStatus> = {}): FarmStatus => ({
  mode: 'polite',
  slots: 8,
  maxSlots: 8,
  reason: 'machine free',
  summary: '8 of 8 slots: machine free',
  background: true,
  ...over,
});

describe('slots chart', () => {
  it('draws the history as steps, from the left edge to now', () => {
    const now = 10 * CHART_MS;
    const history = [
      { at: now - 2 * CHART_MS, slots: 8 },
      { at: now - 30 * 60_000, slots: 2 },
      { at: now - 10 * 60_000, slots: 8 },
    ];
    const [xs, ys] = slotChartData(history, now);
    expect(ys).toEqual([8, 8, 2, 2, 8, 8]);
    expect(xs).toEqual([now - CHART_MS, now - 30 * 60_000, now - 30 * 60_000, now - 10 * 60_000, now - 10 * 60_000, now].map((t) => t / 1000));
  });

  it('has nothing to draw without a history', () => {
    expect(slotChartData([], 1_000)).toEqual([[], []]);
  });

  it('adds a point only when the slots change', () => {
    const h = withSlotPoint([{ at: 1, slots: 4 }], { at: 2, slots: 4 });
    expect(h).toEqual([{ at: 1, slots: 4 }]);
    expect(withSlotPoint(h, { at: 3, slots: 2 })).toEqual([{ at: 1, slots: 4 }, { at: 3, slots: 2 }]);
  });
});

describe('LiveModel: farm and health', () => {
  it('takes the farm and health from the status, then follows farm and health events', () => {
    const m = new LiveModel();
    m.applyStatus({ farm: farm({ history: [{ at: 1, slots: 8 }] }), health: [] } as never);
    m.handle({ event: 'farm', data: farm({ slots: 0, reason: 'paused', summary: '0 of 8 slots: paused', paused: { since: 5 } }) });
    expect(m.farm?.paused).toEqual({ since: 5 });
    expect(m.farm?.history?.map((p) => p.slots)).toEqual([8, 0]);
    const problem = { id: 'farm-paused', severity: 'info' as const, title: 'No slots: the farm is paused', message: 'm', since: 5 };
    m.handle({ event: 'health', data: { at: 6, problems: [problem] } });
    expect(m.health).toEqual([problem]);
  });
});
