import { describe, expect, it } from 'vitest';
import { moveSelection, scrollToReveal, visibleWindow } from './virtual-window';

describe('visibleWindow', () => {
  const base = { viewportHeight: 300, rowHeight: 30, count: 10_000, overscan: 2 };

  it('renders only the rows in view plus overscan', () => {
    const w = visibleWindow({ ...base, scrollTop: 0 });
    expect(w).toEqual({ start: 0, end: 13, offsetTop: 0, totalHeight: 300_000 });
  });

  it('follows the scroll position', () => {
    const w = visibleWindow({ ...base, scrollTop: 3000 });
    expect(w.start).toBe(98);
    expect(w.end).toBe(113);
    expect(w.offsetTop).toBe(98 * 30);
  });

  it('handles a partially scrolled row', () => {
    const w = visibleWindow({ ...base, scrollTop: 45, overscan: 0 });
    expect(w.start).toBe(1);
    expect(w.end).toBe(12);
  });

  it('clamps scroll positions past either end', () => {
    expect(visibleWindow({ ...base, scrollTop: -100 }).start).toBe(0);
    const end = visibleWindow({ ...base, scrollTop: 10_000_000 });
    expect(end.end).toBe(10_000);
    expect(end.start).toBe(10_000 - 10 - 2);
  });

  it('copes with empty and short lists', () => {
    expect(visibleWindow({ ...base, count: 0, scrollTop: 0 })).toEqual({ start: 0, end: 0, offsetTop: 0, totalHeight: 0 });
    expect(visibleWindow({ ...base, count: 3, scrollTop: 50 })).toMatchObject({ start: 0, end: 3 });
  });

  it('keeps the rendered row count bounded regardless of list size', () => {
    const w = visibleWindow({ ...base, count: 1_000_000, scrollTop: 12_345_678 });
    expect(w.end - w.start).toBeLessThanOrEqual(15);
  });
});

describe('scrollToReveal', () => {
  it('scrolls up to a row above the viewport', () => {
    expect(scrollToReveal(2, 300, 300, 30)).toBe(60);
  });
  it('scrolls down just enough for a row below the viewport', () => {
    expect(scrollToReveal(20, 0, 300, 30)).toBe(330);
  });
  it('leaves a visible row alone', () => {
    expect(scrollToReveal(5, 0, 300, 30)).toBe(0);
  });
});

describe('moveSelection', () => {
  it('clamps within the list and starts from an edge', () => {
    expect(moveSelection(-1, 1, 5)).toBe(0);
    expect(moveSelection(-1, -1, 5)).toBe(4);
    expect(moveSelection(4, 1, 5)).toBe(4);
    expect(moveSelection(0, -10, 5)).toBe(0);
    expect(moveSelection(2, 1, 0)).toBe(-1);
  });
});
