// The dashboard window: a locked-down view of the engine's own web UI. Closing it only
// hides it (Kiln lives in the tray); it stays on the dashboard's origin, and links
// elsewhere open in the system browser.
import type { ElectronLike, WindowLike } from './electron-like';

export interface DashboardWindowOptions {
  electron: Pick<ElectronLike, 'BrowserWindow' | 'shell'>;
  /** Dashboard address, e.g. http://127.0.0.1:8981/ */
  httpUrl: string;
  token: string;
  iconPath?: string;
}

export class DashboardWindow {
  private window: WindowLike | undefined;
  private allowClose = false;
  private readonly origin: string;

  constructor(private readonly options: DashboardWindowOptions) {
    this.origin = new URL(options.httpUrl).origin;
  }

  /** Creates the window on first use; afterwards brings it back to the front. */
  show(): void {
    const win = this.window;
    if (!win || win.isDestroyed()) {
      // Shown on ready-to-show, which avoids a blank frame before the dashboard paints.
      this.window = this.create();
      return;
    }
    if (win.isMinimized()) win.restore();
    win.show();
    win.focus();
  }

  /** From now on closing really closes (used while quitting). */
  destroy(): void {
    this.allowClose = true;
    if (this.window && !this.window.isDestroyed()) this.window.destroy();
    this.window = undefined;
  }

  private create(): WindowLike {
    const { BrowserWindow } = this.options.electron;
    const win = new BrowserWindow({
      width: 1280,
      height: 820,
      minWidth: 720,
      minHeight: 480,
      title: 'Kiln',
      show: false,
      icon: this.options.iconPath,
      autoHideMenuBar: true,
      webPreferences: {
        // The dashboard is a plain web app talking HTTP to the engine: it needs no Node and no preload.
        contextIsolation: true,
        nodeIntegration: false,
        sandbox: true,
        webSecurity: true,
        spellcheck: false,
      },
    });
    win.once('ready-to-show', () => {
      win.show();
      win.focus();
    });
    win.on('close', (event) => {
      if (this.allowClose) return;
      event.preventDefault();
      win.hide();
    });
    win.on('closed', () => {
      if (this.window === win) this.window = undefined;
    });
    this.guardNavigation(win);
    // The token travels in the fragment: never sent to the server in a request line or a Referer.
    void win.loadURL(`${this.options.httpUrl}#token=${encodeURIComponent(this.options.token)}`).catch((err: unknown) => {
      console.error('kiln: could not load the dashboard:', err);
    });
    return win;
  }

  private guardNavigation(win: WindowLike): void {
    const keepInside = (event: { url: string; preventDefault(): void }): void => {
      if (isSameOrigin(event.url, this.origin)) return;
      event.preventDefault();
      this.openExternal(event.url);
    };
    win.webContents.on('will-navigate', keepInside);
    win.webContents.on('will-redirect', keepInside);
    win.webContents.setWindowOpenHandler(({ url }) => {
      this.openExternal(url);
      return { action: 'deny' };
    });
  }

  /** Only web links leave the app; file:, javascript: and custom schemes are dropped. */
  private openExternal(url: string): void {
    if (!isWebUrl(url)) return;
    this.options.electron.shell.openExternal(url).catch((err: unknown) => {
      console.error(`kiln: could not open ${url}:`, err);
    });
  }
}

/**
 * The address this machine's window should use: a wildcard listener (0.0.0.0, ::) is
 * reached over loopback, which Kiln's certificate names (it never names 0.0.0.0).
 */
export function localDashboardUrl(httpUrl: string): string {
  const u = new URL(httpUrl);
  if (u.hostname === '0.0.0.0') u.hostname = '127.0.0.1';
  else if (u.hostname === '[::]') u.hostname = '[::1]';
  return u.toString();
}

export function isSameOrigin(url: string, origin: string): boolean {
  try {
    return new URL(url).origin === origin;
  } catch {
    return false;
  }
}

export function isWebUrl(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return protocol === 'https:' || protocol === 'http:';
  } catch {
    return false;
  }
}
