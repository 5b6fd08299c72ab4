import { describe, expect, it } from 'vitest';
import { historyChanges, historyFormFor } from './history-settings';

const current = { invocationHistory: 2000, invocationHistoryDays: 7 };

describe('historyChanges', () => {
  it('sends only what changed', () => {
    expect(historyChanges(current, historyFormFor(current))).toEqual({ body: null, problem: null });
    expect(historyChanges(current, { invocations: '500', days: '7' })).toEqual({ body: { invocationHistory: 500 }, problem: null });
    expect(historyChanges(current, { invocations: ' 2000 ', days: '30' })).toEqual({ body: { invocationHistoryDays: 30 }, problem: null });
  });

  it("checks against the engine's limits", () => {
    expect(historyChanges(current, { invocations: '5', days: '7' }).problem).toBe('Keep a whole number of invocations from 10 to 100,000.');
    expect(historyChanges(current, { invocations: '1.5', days: '7' }).body).toBeNull();
    expect(historyChanges(current, { invocations: '2000', days: '0' }).problem).toBe('Keep invocations for 1 to 365 days.');
    expect(historyChanges(current, { invocations: '2000', days: '400' }).problem).toMatch(/1 to 365/);
  });
});
