import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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

describe('the ways Kiln starts', () => {
  const ROOT = join(__dirname, '..', '..');
  /** The Node flags in a command line: the words between `node` and the script. */
  const nodeFlags = (command: string) => command.split(/\s+/).filter((w) => w.startsWith('--'));

  it('give Node the engine flags up front, so the kiln bin, npm run serve and npm start need no relaunch', () => {
    const shebang = readFileSync(join(ROOT, 'engine', 'cli.ts'), 'utf8').split('\n', 1)[0]!;
    expect(shebang).toMatch(/^#!\/usr\/bin\/env -S node /);
    expect(missingV8Flags(nodeFlags(shebang))).toEqual([]);
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const name of ['serve', 'start']) {
      const command = scripts[name]!.split('&&').find((part) => /\bnode\b/.test(part))!;
      expect(missingV8Flags(nodeFlags(command.split(/dist\//)[0]!)), name).toEqual([]);
    }
  });
});
