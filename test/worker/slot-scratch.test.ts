// A slot's agent empties /tmp and /dev/shm between actions, all but the mount
// points in them: Kiln's own code is bound there when Kiln runs from /tmp (an
// AppImage mounts itself at /tmp/.mount_…), and the folders on the way to it stay.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { emptyScratch } from '../../engine/worker/slot-agent';

describe('emptyScratch', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('removes what an action left, and keeps a mount point and the folders leading to it', () => {
    dir = mkdtempSync(join(tmpdir(), 'kiln-scratch-'));
    const outside = mkdtempSync(join(tmpdir(), 'kiln-scratch-outside-'));
    try {
      writeFileSync(join(outside, 'keep-me'), 'x');
      mkdirSync(join(dir, '.mount_Kiln', 'resources', 'app'), { recursive: true });
      writeFileSync(join(dir, '.mount_Kiln', 'resources', 'app', 'code.js'), 'code');
      writeFileSync(join(dir, '.mount_Kiln', 'left-beside.txt'), 'action');
      mkdirSync(join(dir, 'cache', 'deep'), { recursive: true });
      writeFileSync(join(dir, 'cache', 'deep', 'f'), 'action');
      symlinkSync(outside, join(dir, 'link-out'));
      emptyScratch([dir], [join(dir, '.mount_Kiln', 'resources', 'app')]);
      expect(readdirSync(dir)).toEqual(['.mount_Kiln']);
      expect(readdirSync(join(dir, '.mount_Kiln'))).toEqual(['resources']);
      expect(readdirSync(join(dir, '.mount_Kiln', 'resources', 'app'))).toEqual(['code.js']);
      expect(readdirSync(outside)).toEqual(['keep-me']); // the link went, not what it pointed to
      emptyScratch([dir], []);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });
});
