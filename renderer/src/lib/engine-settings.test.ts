import { describe, expect, it } from 'vitest';
import { budgetBytes, budgetProblem, concurrencyProblem, describeAnswer, formFor, settingsChanges, stepConcurrency } from './engine-settings';

const GiB = 1024 ** 3;
const current = { concurrency: 8, cacheSizeBytes: 20 * GiB };

describe('engine settings form', () => {
  it('fills the form with the largest unit that keeps the number at least 1', () => {
    expect(formFor(current)).toEqual({ concurrency: '8', budgetAmount: '20', budgetUnit: 'GiB' });
    expect(formFor({ concurrency: 1, cacheSizeBytes: 512 * 1024 ** 2 })).toMatchObject({ budgetAmount: '512', budgetUnit: 'MiB' });
    expect(formFor({ concurrency: 1, cacheSizeBytes: 1.5 * 1024 ** 4 })).toMatchObject({ budgetAmount: '1.5', budgetUnit: 'TiB' });
  });

  it('steps concurrency within 1…1024, from the fallback when the field is not a number', () => {
    expect(stepConcurrency('8', 1, 4)).toBe(9);
    expect(stepConcurrency('1', -1, 4)).toBe(1);
    expect(stepConcurrency('1024', 1, 4)).toBe(1024);
    expect(stepConcurrency('abc', 1, 4)).toBe(5);
  });

  it('says what is wrong with a value', () => {
    expect(concurrencyProblem('0')).toMatch(/from 1 to 1024/);
    expect(concurrencyProblem('2.5')).toMatch(/whole number/);
    expect(concurrencyProblem('12')).toBeNull();
    expect(budgetProblem('10', 'MiB')).toMatch(/at least 64 MiB/);
    expect(budgetProblem('lots', 'GiB')).toMatch(/must be a number/);
    expect(budgetProblem('64', 'MiB')).toBeNull();
    expect(budgetBytes('1.5', 'GiB')).toBe(1.5 * GiB);
  });

  it('sends only what changed, the budget as a size string, and nothing when nothing changed', () => {
    expect(settingsChanges(current, formFor(current))).toEqual({ body: null, problem: null });
    expect(settingsChanges(current, { concurrency: '12', budgetAmount: '20', budgetUnit: 'GiB' })).toEqual({ body: { concurrency: 12 }, problem: null });
    expect(settingsChanges(current, { concurrency: '8', budgetAmount: '10', budgetUnit: 'GiB' })).toEqual({ body: { cacheSize: '10GiB' }, problem: null });
    expect(settingsChanges(current, { concurrency: '0', budgetAmount: '10', budgetUnit: 'GiB' })).toMatchObject({ body: null, problem: expect.stringMatching(/from 1/) });
    expect(settingsChanges(current, { concurrency: '8', budgetAmount: '20', budgetUnit: 'MiB' })).toMatchObject({ body: null, problem: expect.stringMatching(/64 MiB/) });
  });

  it('reads the engine’s answer', () => {
    expect(describeAnswer({ message: 'Applied now and saved: 12 worker slots.', appliedNow: ['concurrency'], appliedAtRestart: [] })).toEqual({
      badge: 'Applied now',
      tone: 'ok',
      text: 'Applied now and saved: 12 worker slots.',
    });
    expect(describeAnswer({ message: 'x', appliedNow: [], appliedAtRestart: ['cacheSize'] })).toMatchObject({ badge: 'Restart required', tone: 'warn' });
  });
});
