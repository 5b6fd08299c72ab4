import { describe, expect, it } from 'vitest';
import { ENGINE_V8_FLAGS, electronJsFlagsSwitch, missingV8Flags } from '../../engine/util/v8-flags';

describe('missingV8Flags', () => {
  it('names the young-generation flag when Node was started without it', () => {
    expect(ENGINE_V8_FLAGS).toContain('--min-semi-space-size=16');
    expect(missingV8Flags([])).toEqual([...ENGINE_V8_FLAGS]);
    expect(missingV8Flags(['--import', 'tsx', '--cpu-prof'])).toEqual([...ENGINE_V8_FLAGS]);
  });

  it('counts the flag as given whatever its value or spelling, so a user setting wins', () => {
    expect(missingV8Flags(['--min-semi-space-size=16'])).toEqual([]);
    expect(missingV8Flags(['--min-semi-space-size=64'])).toEqual([]);
    expect(missingV8Flags(['--min_semi_space_size=8'])).toEqual([]);
  });

  it('hands Electron the same flags as one --js-flags switch', () => {
    expect(electronJsFlagsSwitch(['--a=1', '--b'])).toBe('--js-flags=--a=1 --b');
  });
});
