import { describe, expect, it } from 'vitest';
import {
  formatByteRate,
  formatBytes,
  formatCount,
  formatDuration,
  formatPercent,
  formatRate,
  formatTime,
  shortDigest,
} from './format';

describe('formatBytes', () => {
  it('uses binary units with up to three significant digits', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1 KiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(10.25 * 1024 * 1024)).toBe('10.3 MiB');
    expect(formatBytes(200 * 1024 ** 3)).toBe('200 GiB');
    expect(formatBytes(3 * 1024 ** 4)).toBe('3 TiB');
  });
  it('shows a dash for missing or invalid sizes', () => {
    expect(formatBytes(undefined)).toBe('—');
    expect(formatBytes(NaN)).toBe('—');
    expect(formatBytes(-1)).toBe('—');
  });
  it('formats rates', () => {
    expect(formatByteRate(2048)).toBe('2 KiB/s');
    expect(formatByteRate(null)).toBe('—');
  });
});

describe('formatDuration', () => {
  it('picks a precision by magnitude', () => {
    expect(formatDuration(0)).toBe('0 ms');
    expect(formatDuration(849.6)).toBe('850 ms');
    expect(formatDuration(1000)).toBe('1 s');
    expect(formatDuration(4249)).toBe('4.2 s');
    expect(formatDuration(59_999)).toBe('59 s');
    expect(formatDuration(65_000)).toBe('1m 05s');
    expect(formatDuration(2 * 3600_000 + 3 * 60_000 + 59_000)).toBe('2h 03m');
    expect(formatDuration(26 * 3600_000)).toBe('1d 02h');
  });
  it('rejects negatives and NaN', () => {
    expect(formatDuration(-5)).toBe('—');
    expect(formatDuration(undefined)).toBe('—');
  });
});

describe('formatPercent', () => {
  it('rounds and keeps the extremes honest', () => {
    expect(formatPercent(null)).toBe('—');
    expect(formatPercent(0)).toBe('0%');
    expect(formatPercent(0.004)).toBe('<1%');
    expect(formatPercent(0.996)).toBe('>99%');
    expect(formatPercent(1)).toBe('100%');
    expect(formatPercent(0.426)).toBe('43%');
  });
});

describe('small formatters', () => {
  it('counts with separators', () => {
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(formatCount(undefined)).toBe('—');
  });
  it('rates', () => {
    expect(formatRate(0)).toBe('0');
    expect(formatRate(0.25)).toBe('0.3');
    expect(formatRate(3)).toBe('3');
    expect(formatRate(42.4)).toBe('42');
  });
  it('times of day', () => {
    const d = new Date(2024, 0, 1, 9, 5, 7).getTime();
    expect(formatTime(d)).toBe('09:05:07');
  });
  it('short digests', () => {
    expect(shortDigest('0123456789abcdef0123/42')).toBe('0123456789ab…');
    expect(shortDigest('abc/1')).toBe('abc');
    expect(shortDigest(undefined)).toBe('—');
  });
});
