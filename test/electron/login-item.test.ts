import { mkdtemp, readdir, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { autostartEntry, autostartEntryPath, platformLoginItem, xdgLoginItem } from '../../electron/login-item';
import { FakeApp } from './fakes';

describe('xdgLoginItem (Linux Start at login)', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'kiln-login-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('writes ~/.config/autostart/kiln.desktop starting the running app hidden, and removes it', async () => {
    const home = join(root, 'home');
    const item = xdgLoginItem({ env: {}, home, execPath: '/opt/Kiln/kiln' });
    const path = join(home, '.config', 'autostart', 'kiln.desktop');
    expect(item.isEnabled()).toBe(false);

    await item.setEnabled(true);
    expect(item.isEnabled()).toBe(true);
    const text = await readFile(path, 'utf8');
    expect(text.split('\n')[0]).toBe('[Desktop Entry]');
    expect(text).toContain('\nType=Application\n');
    expect(text).toContain('\nExec=/opt/Kiln/kiln --hidden\n');
    expect(text).toContain('\nX-GNOME-Autostart-enabled=true\n');
    // Atomic write: no temp file left next to it.
    expect(await readdir(join(home, '.config', 'autostart'))).toEqual(['kiln.desktop']);

    await item.setEnabled(true); // idempotent
    expect(await readFile(path, 'utf8')).toBe(text);

    await item.setEnabled(false);
    expect(item.isEnabled()).toBe(false);
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
    await item.setEnabled(false); // already off: not an error
  });

  it('honours an absolute XDG_CONFIG_HOME and ignores a relative one', () => {
    expect(autostartEntryPath({ XDG_CONFIG_HOME: '/x/cfg' }, '/home/u')).toBe('/x/cfg/autostart/kiln.desktop');
    expect(autostartEntryPath({ XDG_CONFIG_HOME: 'cfg' }, '/home/u')).toBe('/home/u/.config/autostart/kiln.desktop');
    expect(autostartEntryPath({ XDG_CONFIG_HOME: '' }, '/home/u')).toBe('/home/u/.config/autostart/kiln.desktop');
  });

  it('starts the AppImage itself, not its temporary mount, when run from one', async () => {
    const env = { XDG_CONFIG_HOME: join(root, 'cfg'), APPIMAGE: '/home/u/Apps/Kiln-1.0.AppImage' };
    const item = xdgLoginItem({ env, home: '/nonexistent', execPath: '/tmp/.mount_KilnXYZ/kiln' });
    await item.setEnabled(true);
    const text = await readFile(join(root, 'cfg', 'autostart', 'kiln.desktop'), 'utf8');
    expect(text).toContain('\nExec=/home/u/Apps/Kiln-1.0.AppImage --hidden\n');
  });

  it('quotes an executable path the Desktop Entry way', () => {
    expect(autostartEntry('/opt/My Apps/kiln')).toContain('\nExec="/opt/My Apps/kiln" --hidden\n');
    expect(autostartEntry('/opt/100%/$k"i`ln')).toContain('\nExec="/opt/100%%/\\\\$k\\\\"i\\\\`ln" --hidden\n');
  });

  it('reports a failure to write, and the item stays off', async () => {
    const cfg = join(root, 'cfg');
    await mkdir(cfg);
    await writeFile(join(cfg, 'autostart'), 'not a folder');
    const item = xdgLoginItem({ env: { XDG_CONFIG_HOME: cfg }, home: root, execPath: '/opt/kiln' });
    await expect(item.setEnabled(true)).rejects.toThrow();
    expect(item.isEnabled()).toBe(false);
  });

  it('is the XDG entry for the running executable on Linux, Electron on macOS/Windows, nothing elsewhere', async () => {
    const saved = { XDG_CONFIG_HOME: process.env.XDG_CONFIG_HOME, APPIMAGE: process.env.APPIMAGE };
    process.env.XDG_CONFIG_HOME = root;
    delete process.env.APPIMAGE;
    try {
      const app = new FakeApp('/fake');
      await platformLoginItem('linux', app)!.setEnabled(true);
      expect(await readFile(join(root, 'autostart', 'kiln.desktop'), 'utf8')).toContain(`\nExec=${process.execPath} --hidden\n`);
      expect(app.loginItemCalls).toEqual([]);

      await platformLoginItem('win32', app)!.setEnabled(true);
      expect(app.loginItemCalls).toEqual([{ openAtLogin: true, args: ['--hidden'] }]);
      expect(platformLoginItem('freebsd', app)).toBeUndefined();
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
