import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { findNestHelper } from '../../engine/sandbox/nest-helper';
import { TRAY_STATUSES } from '../../electron/tray-view';
import { encodePng } from '../../scripts/png-encode';
import { APP_ICON_SIZES, TRAY_SIZES } from '../../scripts/gen-icons';

const root = join(__dirname, '..', '..');

/** Width, height and RGBA pixels of a PNG written by our encoder (filter 0 rows only). */
function decode(png: Buffer): { width: number; height: number; rgba: Buffer } {
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  const idat: Buffer[] = [];
  for (let off = 8; off < png.length; ) {
    const len = png.readUInt32BE(off);
    if (png.toString('ascii', off + 4, off + 8) === 'IDAT') idat.push(png.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const rgba = Buffer.concat(Array.from({ length: height }, (_, y) => raw.subarray(y * (width * 4 + 1) + 1, (y + 1) * (width * 4 + 1))));
  return { width, height, rgba };
}

describe('icons', () => {
  it('encodes PNGs that decode to the same pixels', () => {
    const rgba = Uint8Array.from({ length: 3 * 2 * 4 }, (_, i) => (i * 37) % 256);
    const back = decode(encodePng(3, 2, rgba));
    expect([back.width, back.height]).toEqual([3, 2]);
    expect([...back.rgba]).toEqual([...rgba]);
  });

  it('has a tray icon for every status, at 1x and @2x, and they differ', () => {
    const seen = new Set<string>();
    for (const status of TRAY_STATUSES) {
      for (const size of TRAY_SIZES) {
        for (const [suffix, px] of [['', size], ['@2x', size * 2]] as const) {
          const png = decode(readFileSync(join(root, 'build', 'icons', 'tray', `${status}-${size}${suffix}.png`)));
          expect([png.width, png.height]).toEqual([px, px]);
          seen.add(png.rgba.toString('base64'));
        }
      }
    }
    expect(seen.size).toBe(TRAY_STATUSES.length * TRAY_SIZES.length * 2 - TRAY_STATUSES.length); // n-32 and n-16@2x are alike
  });

  it('has the app icon sizes electron-builder needs', () => {
    for (const size of APP_ICON_SIZES) {
      const png = decode(readFileSync(join(root, 'build', 'icons', `${size}x${size}.png`)));
      expect([png.width, png.height]).toEqual([size, size]);
    }
    // The source of the macOS .icns and Windows .ico: at least 512 (mac) and 256 (win) px.
    expect(decode(readFileSync(join(root, 'build', 'icon.png'))).width).toBe(1024);
  });
});

describe('electron-builder config', () => {
  it("passes electron-builder's own schema validation", async () => {
    // Internal modules of electron-builder (no public API for validation alone).
    const { getConfig, validateConfiguration } = require('app-builder-lib/out/util/config/config');
    const { DebugLogger } = require('builder-util');
    const config = await getConfig(root, join(root, 'build', 'electron-builder.yml'), null);
    await expect(validateConfiguration(config, new DebugLogger(false))).resolves.toBeUndefined();
    expect(config.linux.target).toEqual(['AppImage', 'deb']);
    expect(config.mac.target).toBe('dmg');
    expect(config.win.target).toBe('nsis');
    const files: string[] = config.files.flatMap((f: string | { filter: string[] }) => (typeof f === 'string' ? [f] : f.filter));
    expect(files).toEqual(expect.arrayContaining(['dist/**/*', 'renderer/dist/**/*', 'build/icons/tray/*.png', '!dist/test{,/**/*}']));
  });

  it('ships kiln-nest and kiln-spawn unpacked beside app.asar on Linux, where the engine looks for them', async () => {
    const { getConfig } = require('app-builder-lib/out/util/config/config');
    const config = await getConfig(root, join(root, 'build', 'electron-builder.yml'), null);
    // The kernel cannot exec a file inside the archive; findNestHelper reads <app.asar>.unpacked/dist/native/kiln-nest.
    expect(config.asar).toBe(true);
    expect(config.linux.asarUnpack).toEqual(['dist/native/kiln-nest', 'dist/native/kiln-spawn']);
    const files: string[] = config.files.flatMap((f: string | { filter: string[] }) => (typeof f === 'string' ? [f] : f.filter));
    expect(files).toContain('dist/**/*');
    // Packed at all: taken in by a pattern and left out by none (electron-builder's globs are minimatch's).
    const { minimatch } = require('minimatch');
    for (const binary of ['dist/native/kiln-nest', 'dist/native/kiln-spawn']) {
      expect(files.some((f) => !f.startsWith('!') && minimatch(binary, f))).toBe(true);
      expect(files.filter((f) => f.startsWith('!') && minimatch(binary, f.slice(1)))).toEqual([]);
    }
  });

  // electron-builder packs for real here, into a folder (target dir), from a stand-in project and a
  // stand-in Electron distribution (Electron's own cannot be downloaded here): what lands beside app.asar
  // is what an AppImage or .deb would carry.
  it.skipIf(process.platform !== 'linux')(`packs kiln-nest unpacked and runnable, where findNestHelper finds it (electron-builder --linux dir)${process.platform !== 'linux' ? ' (skipped: kiln-nest is Linux-only)' : ''}`, () => {
    const work = mkdtempSync(join(tmpdir(), 'kiln-pack-'));
    try {
      const project = join(work, 'project');
      const electronDist = join(work, 'electron');
      mkdirSync(join(project, 'dist', 'native'), { recursive: true });
      mkdirSync(join(project, 'dist', 'electron'), { recursive: true });
      mkdirSync(join(electronDist, 'resources'), { recursive: true });
      cpSync(join(root, 'build'), join(project, 'build'), { recursive: true });
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'kiln', version: '0.1.0', main: 'dist/electron/main.js', description: 'stand-in', author: 'kiln', license: 'Apache-2.0' }));
      writeFileSync(join(project, 'dist', 'electron', 'main.js'), '// stand-in entry\n');
      writeFileSync(join(project, 'dist', 'native', 'kiln-nest'), '#!/bin/sh\necho "stand-in kiln-nest $*"\n', { mode: 0o755 });
      writeFileSync(join(electronDist, 'electron'), '#!/bin/sh\n', { mode: 0o755 });
      writeFileSync(join(electronDist, 'version'), '45.4.1');
      const r = spawnSync(join(root, 'node_modules', '.bin', 'electron-builder'),
        ['--linux', 'dir', '--config', 'build/electron-builder.yml', `-c.electronDist=${electronDist}`, '-c.electronVersion=45.4.1'],
        { cwd: project, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ELECTRON_BUILDER_OFFLINE: '1' } });
      expect(r.status, r.stderr + r.stdout).toBe(0);
      const resources = join(project, 'release', 'linux-unpacked', 'resources');
      const found = findNestHelper({ root: join(resources, 'app.asar') });
      expect(found).toEqual({ path: join(resources, 'app.asar.unpacked', 'dist', 'native', 'kiln-nest') });
      expect(spawnSync(found.path!, ['--keep', '/x'], { encoding: 'utf8' }).stdout).toBe('stand-in kiln-nest --keep /x\n');
    } finally {
      chmodSync(work, 0o700);
      rmSync(work, { recursive: true, force: true });
    }
  }, 180_000);

  it('packages the entry point package.json names', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(pkg.main).toBe('dist/electron/main.js');
    expect(pkg.scripts.dist).toBe('npm run build && electron-builder --config build/electron-builder.yml');
  });
});
