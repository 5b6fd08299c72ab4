// The Bazel e2e tests decide "ran remotely" and "all cache hits" from Bazel's
// process summary; this pins the parser to the lines Bazel 2.1 and 4.2 print.
import { describe, expect, it } from 'vitest';
import { executedKinds, parseProcessSummary } from './harness';

describe('parseProcessSummary', () => {
  it('reads Bazel 4.2 lines with internal processes', () => {
    const s = parseProcessSummary('INFO: Elapsed time: 2.7s\nINFO: 9 processes: 3 internal, 6 linux-sandbox.\nINFO: Build completed');
    expect(s).toEqual({ line: '9 processes: 3 internal, 6 linux-sandbox.', total: 9, kinds: { internal: 3, 'linux-sandbox': 6 } });
    expect(executedKinds(s!)).toEqual({ 'linux-sandbox': 6 });
  });

  it('reads Bazel 2.1 lines and multi-word kinds', () => {
    const s = parseProcessSummary('INFO: 6 processes: 6 remote cache hit.\n');
    expect(s?.kinds).toEqual({ 'remote cache hit': 6 });
    expect(executedKinds(s!)).toEqual({});
  });

  it('reads mixed remote and cached processes, and a single process', () => {
    expect(parseProcessSummary('INFO: 7 processes: 2 internal, 3 remote cache hit, 2 remote.')?.kinds).toEqual({
      internal: 2,
      'remote cache hit': 3,
      remote: 2,
    });
    expect(parseProcessSummary('INFO: 1 process: 1 internal.')?.kinds).toEqual({ internal: 1 });
  });

  it('takes the last summary and ignores other INFO lines', () => {
    const out = 'INFO: 2 processes: 2 remote.\nINFO: Found 3 targets...\nINFO: 4 processes: 4 remote cache hit.\n';
    expect(parseProcessSummary(out)?.total).toBe(4);
    expect(parseProcessSummary('INFO: Build completed successfully, 9 total actions')).toBeUndefined();
  });

  it('handles a summary without a breakdown', () => {
    expect(parseProcessSummary('INFO: 0 processes.')).toEqual({ line: '0 processes.', total: 0, kinds: {} });
  });
});
