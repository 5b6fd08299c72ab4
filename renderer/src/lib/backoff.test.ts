import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff';

describe('backoffDelay', () => {
  it('doubles per attempt within [ceiling/2, ceiling]', () => {
    const lo = { random: () => 0 };
    const hi = { random: () => 0.999999 };
    expect(backoffDelay(0, lo)).toBe(250);
    expect(backoffDelay(0, hi)).toBe(500);
    expect(backoffDelay(3, lo)).toBe(2000);
    expect(backoffDelay(3, hi)).toBe(4000);
  });
  it('caps at maxMs', () => {
    expect(backoffDelay(50, { random: () => 0.999999, maxMs: 10_000 })).toBe(10_000);
  });
});
