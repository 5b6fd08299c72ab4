import { describe, expect, it } from 'vitest';
import { shellQuote, timingSegments } from './timing';

describe('timingSegments', () => {
  it('splits the bar by phase', () => {
    const s = timingSegments({ queuedMs: 100, inputFetchMs: 100, executionMs: 700, outputUploadMs: 100, totalMs: 1000 });
    expect(s.map((x) => [x.key, x.fraction])).toEqual([['queued', 0.1], ['inputs', 0.1], ['run', 0.7], ['upload', 0.1]]);
  });
  it('is all zeros for an instant action, and ignores negatives', () => {
    expect(timingSegments({ queuedMs: 0, inputFetchMs: 0, executionMs: 0, outputUploadMs: 0, totalMs: 0 }).every((x) => x.fraction === 0)).toBe(true);
    expect(timingSegments({ queuedMs: -5, inputFetchMs: 0, executionMs: 10, outputUploadMs: 0, totalMs: 10 })[2].fraction).toBe(1);
  });
});

describe('shellQuote', () => {
  it('quotes only what needs it', () => {
    expect(shellQuote(['sh', '-c', "echo 'hi' there"])).toBe(`sh -c 'echo '\\''hi'\\'' there'`);
    expect(shellQuote(['/usr/bin/gcc', '-o', 'out/a.o', 'KEY=v'])).toBe('/usr/bin/gcc -o out/a.o KEY=v');
    expect(shellQuote(['a b', ''])).toBe(`'a b' ''`);
  });
});
