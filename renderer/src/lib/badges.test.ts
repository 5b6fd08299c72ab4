import { describe, expect, it } from 'vitest';
import { badgeFor, elapsedMs } from './badges';

describe('badgeFor', () => {
  it('names states and outcomes', () => {
    expect(badgeFor({ state: 'queued', stage: 'queued', cached: false })).toEqual({ text: 'Queued', tone: 'neutral' });
    expect(badgeFor({ state: 'running', stage: 'fetching-inputs', cached: false }).text).toBe('Staging inputs');
    expect(badgeFor({ state: 'finished', stage: 'finished', cached: false, outcome: 'failure' })).toEqual({ text: 'Failed', tone: 'bad' });
    expect(badgeFor({ state: 'finished', stage: 'finished', cached: true, outcome: 'success' }).text).toBe('Cached');
    expect(badgeFor({ state: 'finished', stage: 'finished', cached: false, outcome: 'timeout' }).text).toBe('Timed out');
  });
});

describe('elapsedMs', () => {
  it('ticks while running and is fixed once finished', () => {
    expect(elapsedMs({ state: 'running', queuedAt: 1000 }, 4000)).toBe(3000);
    expect(elapsedMs({ state: 'finished', queuedAt: 1000, durationMs: 250 }, 9999)).toBe(250);
    expect(elapsedMs({ state: 'finished', queuedAt: 1000, finishedAt: 1500 }, 9999)).toBe(500);
  });
});
