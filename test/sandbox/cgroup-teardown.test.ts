// killUntilEmpty on stand-in cgroup folders: a plain folder with a cgroup.procs file
// lists processes as the kernel's would, but never drops them when they die.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killUntilEmpty } from '../../engine/sandbox/cgroup-teardown';

const root = mkdtempSync(join(tmpdir(), 'kiln-cgroup-teardown-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function standIn(name: string, procs: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'cgroup.procs'), procs);
  return dir;
}

describe('killUntilEmpty', () => {
  it('takes cgroups that list nothing as empty at once', async () => {
    expect(await killUntilEmpty([standIn('empty-a', ''), standIn('empty-b', '\n')], 1)).toBe(true);
  });

  it('kills what a cgroup lists, and does not call it empty while it still lists it', async () => {
    const child = spawn('sleep', ['300'], { stdio: 'ignore' });
    const died = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    const dir = standIn('survivor', `${child.pid}\n`);
    expect(await killUntilEmpty([standIn('clean', ''), dir], 2)).toBe(false);
    expect(await died).toBe('SIGKILL');
  });

  it('does not call a cgroup empty when its list cannot be read', async () => {
    expect(await killUntilEmpty([join(root, 'gone')], 2)).toBe(false);
  });
});
