import { describe, expect, it } from 'vitest';
import { initialLogTab, stageLine } from './detail';

describe('initialLogTab', () => {
  it('opens a failed run on stderr, whatever stdout holds', () => {
    expect(initialLogTab({ outcome: 'failure', exitCode: 1, stdoutDigest: 'a/10', stderrDigest: 'b/0' })).toBe('stderr');
    expect(initialLogTab({ outcome: 'timeout', exitCode: 0 })).toBe('stderr');
    expect(initialLogTab({ outcome: 'error' })).toBe('stderr');
  });

  it('opens a success on stdout unless only stderr has something', () => {
    expect(initialLogTab({ outcome: 'success', exitCode: 0, stdoutDigest: 'a/10', stderrDigest: 'b/5' })).toBe('stdout');
    expect(initialLogTab({ outcome: 'success', exitCode: 0, stderrDigest: 'b/5' })).toBe('stderr');
    expect(initialLogTab({ outcome: 'success', exitCode: 0 }, { stdout: 0, stderr: 3 })).toBe('stderr');
    expect(initialLogTab({ outcome: 'success', exitCode: 0 })).toBe('stdout');
  });
});

describe('stageLine', () => {
  it('names the stage and the time against the timeout', () => {
    expect(stageLine('fetching-inputs', '2 s', '15 min')).toBe('Staging inputs · 2 s of 15 min');
    expect(stageLine('queued', '1 s')).toBe('Waiting for a worker slot · 1 s');
    expect(stageLine('finished', '9 s')).toBe('Finished');
  });
});
