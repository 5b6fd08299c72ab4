// The macOS profile's text: the same rules as bubblewrap's, in SBPL (not run on a Mac here).
import { describe, expect, it } from 'vitest';
import { sbplString, seatbeltProfile } from '../../engine/sandbox/seatbelt-profile';

const rules = { execRoot: '/Users/alice/Library/Application Support/Kiln/build/run-1', tmpDir: '/private/tmp/kiln-run-1', hidden: ['/Users/alice', '/Users/alice/Library/Application Support/Kiln'], network: false };

describe('seatbeltProfile', () => {
  it('denies by default, reads the system, hides the home and data folder, then gives the exec root back', () => {
    const lines = seatbeltProfile(rules).trim().split('\n');
    expect(lines[0]).toBe('(version 1)');
    expect(lines[1]).toBe('(deny default)');
    const allowRead = lines.indexOf('(allow file-read*)');
    const hideHome = lines.indexOf('(deny file-read* (subpath "/Users/alice"))');
    const execRootBack = lines.findIndex((l) => l.startsWith('(allow file-read* (subpath "/Users/alice/Library/Application Support/Kiln/build/run-1")'));
    expect(allowRead).toBeGreaterThan(1);
    expect(hideHome).toBeGreaterThan(allowRead);
    expect(execRootBack).toBeGreaterThan(hideHome);
  });

  it('writes only the exec root, its temp folder and harmless devices', () => {
    const writes = seatbeltProfile(rules).split('\n').filter((l) => l.includes('file-write'));
    expect(writes).toEqual([
      '(allow file-write* (subpath "/Users/alice/Library/Application Support/Kiln/build/run-1") (subpath "/private/tmp/kiln-run-1") (literal "/dev/null") (literal "/dev/zero") (literal "/dev/tty"))',
    ]);
  });

  it('has no network unless asked for', () => {
    expect(seatbeltProfile(rules)).toContain('(deny network*)');
    expect(seatbeltProfile(rules)).not.toContain('(allow network*)');
    expect(seatbeltProfile({ ...rules, network: true })).toContain('(allow network*)');
  });

  it('quotes paths so a name cannot end the string early', () => {
    expect(sbplString('/tmp/a "b"\\c')).toBe('"/tmp/a \\"b\\"\\\\c"');
  });
});
