// "Start at login". Electron implements it on macOS and Windows; on Linux Kiln writes an
// XDG autostart entry ($XDG_CONFIG_HOME/autostart/kiln.desktop), which desktop sessions
// (GNOME, KDE, Xfce, …) run at login. The entry's existence is the setting.
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { writeFileAtomic } from '../engine/util/atomic-file';
import type { AppLike } from './electron-like';

/** Passed to the app when it is started at login, so it starts in the tray. */
export const HIDDEN_FLAG = '--hidden';

export interface LoginItem {
  isEnabled(): boolean;
  setEnabled(enabled: boolean): Promise<void>;
}

/** macOS and Windows. Windows only matches an entry made with args if asked with the same args. */
export function electronLoginItem(app: Pick<AppLike, 'getLoginItemSettings' | 'setLoginItemSettings'>): LoginItem {
  const args = [HIDDEN_FLAG];
  return {
    isEnabled: () => app.getLoginItemSettings({ args }).openAtLogin,
    setEnabled: async (enabled) => app.setLoginItemSettings({ openAtLogin: enabled, args }),
  };
}

export interface XdgLoginItemOptions {
  env: NodeJS.ProcessEnv;
  /** Home folder, for the default ~/.config. */
  home: string;
  /** The running app's executable (process.execPath); an AppImage's own path wins (env.APPIMAGE). */
  execPath: string;
}

/** Where the autostart entry lives: $XDG_CONFIG_HOME/autostart, ~/.config/autostart by default. */
export function autostartEntryPath(env: NodeJS.ProcessEnv, home: string): string {
  // The spec ignores a relative XDG_CONFIG_HOME.
  const configHome = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(home, '.config');
  return join(configHome, 'autostart', 'kiln.desktop');
}

export function autostartEntry(executable: string): string {
  return [
    '[Desktop Entry]',
    'Type=Application',
    'Version=1.0',
    'Name=Kiln',
    'Comment=Bazel remote execution on this machine',
    `Exec=${execArg(executable)} ${HIDDEN_FLAG}`,
    'Terminal=false',
    'X-GNOME-Autostart-enabled=true',
    '',
  ].join('\n');
}

export function xdgLoginItem(options: XdgLoginItemOptions): LoginItem {
  const path = autostartEntryPath(options.env, options.home);
  // The AppImage's mount point (execPath) changes on every run; APPIMAGE is the file itself.
  const executable = options.env.APPIMAGE || options.execPath;
  return {
    isEnabled: () => existsSync(path),
    async setEnabled(enabled) {
      if (!enabled) {
        await rm(path, { force: true });
        return;
      }
      await mkdir(dirname(path), { recursive: true });
      await writeFileAtomic(path, autostartEntry(executable));
    },
  };
}

/** The login item for this platform, or undefined where Kiln offers none. */
export function platformLoginItem(
  platform: NodeJS.Platform,
  app: Pick<AppLike, 'getLoginItemSettings' | 'setLoginItemSettings'>,
): LoginItem | undefined {
  if (platform === 'darwin' || platform === 'win32') return electronLoginItem(app);
  if (platform === 'linux') return xdgLoginItem({ env: process.env, home: homedir(), execPath: process.execPath });
  return undefined;
}

/**
 * One Exec argument, quoted per the Desktop Entry spec when it holds reserved characters.
 * Inside quotes ", `, $ and \ take a backslash; the value's own escaping then doubles every
 * backslash, and a literal % is written %%.
 */
function execArg(arg: string): string {
  const escaped = arg.replace(/%/g, '%%');
  if (!/[\s"'\\><~|&;$*?#()`]/.test(escaped)) return escaped;
  const quoted = escaped.replace(/["`$\\]/g, (c) => `\\${c}`);
  return `"${quoted.replace(/\\/g, '\\\\')}"`;
}
