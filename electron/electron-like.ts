// The slice of Electron's main-process API the desktop shell uses. Modules depend on
// these narrow shapes, not on 'electron' itself, so tests drive them with a small fake;
// main.ts assigns the real module to ElectronLike, which makes tsc check that Electron
// really offers every member used here with compatible signatures.
import type {
  BrowserWindowConstructorOptions,
  Menu,
  MenuItemConstructorOptions,
  NativeImage,
  Settings as LoginItemSettingsInput,
} from 'electron';

export type { BrowserWindowConstructorOptions, MenuItemConstructorOptions, LoginItemSettingsInput };

/** Electron's Event: only cancellation is used. */
export interface PreventableEvent {
  preventDefault(): void;
}

export interface AppLike {
  requestSingleInstanceLock(): boolean;
  whenReady(): Promise<void>;
  quit(): void;
  exit(exitCode?: number): void;
  getPath(name: 'userData' | 'appData'): string;
  setPath(name: 'userData', path: string): void;
  /** `args`: Windows matches the entry only with the args it was made with. `wasOpenedAtLogin` is macOS's. */
  getLoginItemSettings(options?: { args?: string[] }): { openAtLogin: boolean; wasOpenedAtLogin?: boolean };
  setLoginItemSettings(settings: LoginItemSettingsInput): void;
  on(event: 'second-instance', listener: (event: PreventableEvent, argv: string[]) => void): unknown;
  on(event: 'before-quit', listener: (event: PreventableEvent) => void): unknown;
  on(event: 'window-all-closed', listener: () => void): unknown;
  on(event: 'activate', listener: () => void): unknown;
  /** Chromium refused a server certificate; `callback(true)` (after preventDefault) accepts it. */
  on(
    event: 'certificate-error',
    listener: (
      event: PreventableEvent,
      webContents: unknown,
      url: string,
      error: string,
      certificate: { data: string },
      callback: (isTrusted: boolean) => void,
    ) => void,
  ): unknown;
}

export interface WebContentsLike {
  on(event: 'will-navigate', listener: (details: PreventableEvent & { url: string }) => void): unknown;
  on(event: 'will-redirect', listener: (details: PreventableEvent & { url: string }) => void): unknown;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' }): void;
}

export interface WindowLike {
  readonly webContents: WebContentsLike;
  loadURL(url: string): Promise<void>;
  show(): void;
  hide(): void;
  focus(): void;
  restore(): void;
  isMinimized(): boolean;
  isDestroyed(): boolean;
  destroy(): void;
  on(event: 'close', listener: (event: PreventableEvent) => void): unknown;
  on(event: 'closed', listener: () => void): unknown;
  once(event: 'ready-to-show', listener: () => void): unknown;
}

/** Opaque to the shell: made by Electron and only handed back to it (fakes cast). */
export type ImageLike = NativeImage;
/** Opaque to the shell: made by Electron and only handed back to it (fakes cast). */
export type MenuLike = Menu;

export interface TrayLike {
  setImage(image: ImageLike): void;
  setToolTip(toolTip: string): void;
  setContextMenu(menu: MenuLike | null): void;
  on(event: 'click', listener: () => void): unknown;
  destroy(): void;
}

/** Electron's powerMonitor: the person at the desk and the battery (the farm's desk signals). */
export interface PowerMonitorLike {
  /** Seconds since the last keyboard or mouse input. */
  getSystemIdleTime(): number;
  getSystemIdleState(idleThreshold: number): 'active' | 'idle' | 'locked' | 'unknown';
  isOnBatteryPower(): boolean;
}

export interface ElectronLike {
  app: AppLike;
  BrowserWindow: new (options: BrowserWindowConstructorOptions) => WindowLike;
  Tray: new (image: ImageLike) => TrayLike;
  Menu: { buildFromTemplate(template: MenuItemConstructorOptions[]): MenuLike };
  nativeImage: { createFromPath(path: string): ImageLike };
  shell: { openExternal(url: string): Promise<void> };
  clipboard: { writeText(text: string): unknown };
  powerMonitor: PowerMonitorLike;
}
