// One engine per data folder: a second refuses to start and names the holder.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../engine/engine';
import { defaultConfig } from '../../engine/config';
import { DataDirLockedError, lockDataDir } from '../../engine/util/data-dir-lock';

const config = (dataDir: string) => ({ ...defaultConfig(), dataDir, port: 0, httpPort: 0, concurrency: 1 });

describe('data folder lock', () => {
  it('refuses a second engine on the same folder, and allows it after the first stops', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-lock-'));
    const first = await Engine.start({ config: config(dir) });
    try {
      await expect(Engine.start({ config: config(dir) })).rejects.toThrow(/another Kiln engine in this process is using the data folder/);
    } finally {
      await first.stop({ drainMs: 0 });
    }
    expect(existsSync(join(dir, 'kiln.lock'))).toBe(false);
    const second = await Engine.start({ config: config(dir) });
    await second.stop({ drainMs: 0 });
  });

  it('names a live process that holds the folder, and takes over a lock left by a dead one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-lock-'));
    const sleeper = spawn('sleep', ['30']);
    try {
      writeFileSync(join(dir, 'kiln.lock'), `${sleeper.pid}\n`);
      expect(() => lockDataDir(dir)).toThrow(DataDirLockedError);
      expect(() => lockDataDir(dir)).toThrow(new RegExp(`pid ${sleeper.pid}`));
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
    }
    // The holder is gone: its lock is stale and is taken over.
    const lock = lockDataDir(dir);
    lock.release();
    expect(existsSync(join(dir, 'kiln.lock'))).toBe(false);
  });
});
