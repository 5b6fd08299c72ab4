// The desktop app's lifecycle: one instance, the engine in-process, a tray that keeps Kiln
// running when the window is closed, and a quit that lets running actions finish.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kilnCaPath } from '../engine/lan/access';
import { bazelFlags } from './bazel-flags';
import { trustKilnCa } from './certificate-trust';
import { desktopEngineConfig, type ConfigFileLoader } from './desktop-config';
import type { EngineFactory, EngineHandle } from './engine-handle';
import type { ElectronLike } from './electron-like';
import { fileSettingsStore, type SettingsStore } from './settings';
import { HIDDEN_FLAG } from './login-item';
import { KilnTray } from './tray';
import { powerMonitorSignals } from './power-signals';
import { DashboardWindow, localDashboardUrl } from './window';

export interface DesktopAppOptions {
  electron: ElectronLike;
  startEngine: EngineFactory;
  loadConfigFile: ConfigFileLoader;
  /** App root (dev checkout or packaged app): build/icons is found under it. */
  resourceDir: string;
  platform: NodeJS.Platform;
  argv: readonly string[];
  /** Defaults to desktop-settings.json in userData. */
  settingsStore?: (userData: string) => SettingsStore;
  /** The engine's data folder; defaults to `kiln serve`'s (engine/config.ts defaultDataDir()). */
  dataDir?: string;
  /** How long running actions may finish on quit before they are cancelled. */
  drainMs?: number;
  /** Beyond drainMs: if the engine still has not stopped, quit anyway. */
  stopGraceMs?: number;
  log?: (message: string) => void;
}

export interface DesktopApp {
  /** Resolves once start-up is over: true when the engine runs, false otherwise. */
  readonly started: Promise<boolean>;
  /** Resolves after the engine has stopped and Electron was told to quit. */
  readonly stopped: Promise<void>;
}

export const DEFAULT_DRAIN_MS = 10_000;
const DEFAULT_STOP_GRACE_MS = 5_000;

export function createDesktopApp(options: DesktopAppOptions): DesktopApp {
  const { electron, platform } = options;
  const { app } = electron;
  const log = options.log ?? ((m: string) => console.error(m));

  // Pin the data folder to "Kiln" whatever the package name, in dev and packaged builds
  // alike. Before the lock: Electron keys the single-instance lock on this folder.
  app.setPath('userData', join(app.getPath('appData'), 'Kiln'));
  const userData = app.getPath('userData');

  if (!app.requestSingleInstanceLock()) {
    // Another Kiln owns the ports and the store; it has been told to show itself.
    app.quit();
    return { started: Promise.resolve(false), stopped: Promise.resolve() };
  }

  let tray: KilnTray | undefined;
  let window: DashboardWindow | undefined;
  // Started at login: stay in the tray. Linux and Windows pass --hidden; macOS ignores a login
  // item's args, but says whether it opened the app at login.
  let showWhenReady = !(
    options.argv.includes(HIDDEN_FLAG) || (platform === 'darwin' && app.getLoginItemSettings().wasOpenedAtLogin === true)
  );
  const showDashboard = (): void => {
    if (window) window.show();
    else showWhenReady = true;
  };

  app.on('second-instance', () => showDashboard());
  // macOS: clicking the Dock icon.
  app.on('activate', () => showDashboard());
  // Without a listener Electron quits when the last window goes; Kiln lives on in the tray.
  app.on('window-all-closed', () => {});

  const settings = (
    options.settingsStore ?? ((dir) => fileSettingsStore(join(dir, 'desktop-settings.json'), join(dir, 'settings.json')))
  )(userData);

  const engineReady: Promise<EngineHandle | undefined> = app.whenReady().then(async () => {
    tray = new KilnTray({
      electron,
      iconDir: join(options.resourceDir, 'build', 'icons', 'tray'),
      platform,
      openDashboard: showDashboard,
      quit: () => app.quit(),
      log,
    });
    try {
      const config = await desktopEngineConfig(userData, await settings.load(), options.loadConfigFile, options.dataDir);
      const engine = await options.startEngine(config, { deskSignals: powerMonitorSignals(electron.powerMonitor) });
      // Remember the switch whichever side flipped it, tray or dashboard.
      engine.events.on('execution.toggled', (e) => {
        settings.update({ executionEnabled: e.enabled }).catch((err: unknown) => {
          log(`kiln: could not save settings: ${String(err)}`);
        });
      });
      tray.attach(engine, () => bazelFlags(engine.grpcUrl, config));
      const httpUrl = localDashboardUrl(engine.httpUrl);
      if (httpUrl.startsWith('https:')) {
        // LAN mode: the dashboard's certificate comes from Kiln's own CA; trust it for this origin only.
        try {
          trustKilnCa(app, new URL(httpUrl).origin, readFileSync(kilnCaPath(config.dataDir), 'utf8'));
        } catch (err) {
          log(`kiln: cannot read Kiln's CA, so the window will not trust the dashboard's certificate: ${String(err)}`);
        }
      }
      window = new DashboardWindow({
        electron,
        httpUrl,
        token: engine.httpToken,
        iconPath: join(options.resourceDir, 'build', 'icons', '512x512.png'),
      });
      if (showWhenReady) window.show();
      return engine;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log(`kiln: the engine did not start: ${message}`);
      tray.showStartupError(message);
      return undefined;
    }
  });

  let stopped = false;
  let resolveStopped!: () => void;
  const stoppedPromise = new Promise<void>((resolve) => (resolveStopped = resolve));
  let stopping: Promise<void> | undefined;

  app.on('before-quit', (event) => {
    if (stopped) return; // second pass, after the engine stopped: let Electron quit
    event.preventDefault();
    stopping ??= shutdown().finally(() => {
      stopped = true;
      tray?.destroy();
      resolveStopped();
      app.quit();
    });
  });

  async function shutdown(): Promise<void> {
    tray?.setQuitting();
    window?.destroy();
    const engine = await engineReady;
    if (!engine) return;
    const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
    const graceMs = options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), drainMs + graceMs)));
    try {
      // The engine stops accepting work, drains for up to drainMs, cancels the rest, closes servers.
      const outcome = await Promise.race([engine.stop({ drainMs }), deadline]);
      if (outcome === 'timeout') log(`kiln: the engine did not stop within ${drainMs + graceMs} ms; quitting anyway`);
    } catch (err) {
      log(`kiln: error while stopping the engine: ${String(err)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  return { started: engineReady.then((e) => e !== undefined), stopped: stoppedPromise };
}
