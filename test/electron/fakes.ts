// Stand-ins for the electron module and the engine: they record what the shell does
// and let tests fire the events Electron and the engine would.
import type { MenuItemConstructorOptions } from 'electron';
import { EventBus } from '../../engine/events/event-bus';
import { describeSlots, type FarmMode, type FarmStatus, type HealthProblem, type HealthReport } from '../../engine/common/farm-modes';
import type { EngineHandle, TrayMetrics } from '../../electron/engine-handle';
import type {
  AppLike,
  BrowserWindowConstructorOptions,
  ElectronLike,
  ImageLike,
  MenuLike,
  PreventableEvent,
  TrayLike,
  WebContentsLike,
  WindowLike,
} from '../../electron/electron-like';

type Listener = (...args: any[]) => void;

class Emitter {
  private listeners = new Map<string, Listener[]>();
  on(event: string, listener: Listener): this {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
    return this;
  }
  once(event: string, listener: Listener): this {
    const wrapped: Listener = (...args) => {
      this.listeners.set(event, (this.listeners.get(event) ?? []).filter((l) => l !== wrapped));
      listener(...args);
    };
    return this.on(event, wrapped);
  }
  emit(event: string, ...args: unknown[]): void {
    for (const l of this.listeners.get(event) ?? []) l(...args);
  }
  listenerCount(event: string): number {
    return this.listeners.get(event)?.length ?? 0;
  }
}

export function preventable(extra: Record<string, unknown> = {}): PreventableEvent & { defaultPrevented: boolean } {
  const e = {
    defaultPrevented: false,
    preventDefault() {
      e.defaultPrevented = true;
    },
    ...extra,
  };
  return e;
}

export class FakeApp extends Emitter implements AppLike {
  hasLock = true;
  quitCalls = 0;
  exited?: number;
  paths: Record<string, string>;
  loginItem = { openAtLogin: false, wasOpenedAtLogin: false };
  loginItemCalls: unknown[] = [];
  /** Like Windows: an entry made with args is only found when asked with the same args. */
  loginItemArgs: string[] = [];
  private ready!: () => void;
  private readyPromise = new Promise<void>((resolve) => (this.ready = resolve));

  constructor(appData: string) {
    super();
    this.paths = { appData, userData: `${appData}/kiln` };
  }
  requestSingleInstanceLock() {
    return this.hasLock;
  }
  whenReady() {
    return this.readyPromise;
  }
  fireReady() {
    this.ready();
  }
  /** Like Electron: quit emits before-quit, and quits unless a listener prevents it. */
  quit() {
    this.quitCalls++;
    const event = preventable();
    this.emit('before-quit', event);
    if (!event.defaultPrevented) this.exited ??= 0;
  }
  exit(code = 0) {
    this.exited = code;
  }
  getPath(name: 'userData' | 'appData') {
    return this.paths[name]!;
  }
  setPath(name: 'userData', path: string) {
    this.paths[name] = path;
  }
  getLoginItemSettings(options: { args?: string[] } = {}) {
    const sameArgs = JSON.stringify(options.args ?? []) === JSON.stringify(this.loginItemArgs);
    return { ...this.loginItem, openAtLogin: this.loginItem.openAtLogin && sameArgs };
  }
  setLoginItemSettings(settings: { openAtLogin?: boolean; args?: string[] }) {
    this.loginItemCalls.push(settings);
    this.loginItem.openAtLogin = settings.openAtLogin ?? false;
    this.loginItemArgs = settings.args ?? [];
  }
}

class FakeWebContents extends Emitter implements WebContentsLike {
  openHandler?: (details: { url: string }) => { action: 'deny' };
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' }) {
    this.openHandler = handler;
  }
}

export class FakeWindow extends Emitter implements WindowLike {
  static created: FakeWindow[] = [];
  readonly webContents = new FakeWebContents();
  visible = false;
  minimized = false;
  destroyed = false;
  focused = 0;
  url?: string;
  constructor(readonly options: BrowserWindowConstructorOptions) {
    super();
    FakeWindow.created.push(this);
  }
  loadURL(url: string) {
    this.url = url;
    return Promise.resolve();
  }
  show() {
    this.visible = true;
  }
  hide() {
    this.visible = false;
  }
  focus() {
    this.focused++;
  }
  restore() {
    this.minimized = false;
  }
  isMinimized() {
    return this.minimized;
  }
  isDestroyed() {
    return this.destroyed;
  }
  destroy() {
    this.destroyed = true;
    this.emit('closed');
  }
  /** What the user's close button does: 'close', and unless prevented, the window goes. */
  userClose() {
    const event = preventable();
    this.emit('close', event);
    if (!event.defaultPrevented) this.destroy();
  }
}

export interface FakeImage {
  path: string;
}

export class FakeTray extends Emitter implements TrayLike {
  static created: FakeTray[] = [];
  images: string[] = [];
  tooltip = '';
  menu?: MenuItemConstructorOptions[];
  menuBuilds = 0;
  destroyed = false;
  constructor(image: ImageLike) {
    super();
    this.images.push((image as unknown as FakeImage).path);
    FakeTray.created.push(this);
  }
  setImage(image: ImageLike) {
    this.images.push((image as unknown as FakeImage).path);
  }
  setToolTip(text: string) {
    this.tooltip = text;
  }
  setContextMenu(menu: MenuLike | null) {
    this.menu = (menu as unknown as { template: MenuItemConstructorOptions[] } | null)?.template;
    this.menuBuilds++;
  }
  destroy() {
    this.destroyed = true;
  }
  get icon(): string {
    return this.images.at(-1)!;
  }
  /** A menu item by label, looking into submenus too. */
  item(label: string | RegExp, items = this.menu): MenuItemConstructorOptions | undefined {
    for (const i of items ?? []) {
      if (typeof label === 'string' ? i.label === label : label.test(i.label ?? '')) return i;
      const inner = Array.isArray(i.submenu) ? this.item(label, i.submenu) : undefined;
      if (inner) return inner;
    }
    return undefined;
  }
  /** Clicks a menu item the way Electron does (a checkbox flips before click runs). */
  click(label: string | RegExp): void {
    const item = this.item(label);
    if (!item?.click) throw new Error(`no clickable menu item ${label}; menu: ${this.menu?.map((i) => i.label).join(', ')}`);
    if (item.type === 'checkbox') item.checked = !item.checked;
    (item.click as (i: unknown) => void)(item);
  }
}

export function fakeElectron(appData = '/fake/appData') {
  FakeWindow.created = [];
  FakeTray.created = [];
  const app = new FakeApp(appData);
  const clipboard = { text: '', writeText(text: string) { clipboard.text = text; } };
  const shell = { opened: [] as string[], openExternal(url: string) { shell.opened.push(url); return Promise.resolve(); } };
  const electron = {
    app,
    BrowserWindow: FakeWindow,
    Tray: FakeTray,
    Menu: { buildFromTemplate: (template: MenuItemConstructorOptions[]) => ({ template }) as unknown as MenuLike },
    nativeImage: { createFromPath: (path: string) => ({ path }) as unknown as ImageLike },
    shell,
    clipboard,
    powerMonitor: {
      idleSeconds: 0,
      state: 'active' as 'active' | 'idle' | 'locked' | 'unknown',
      onBattery: false,
      getSystemIdleTime() {
        return this.idleSeconds;
      },
      getSystemIdleState() {
        return this.state;
      },
      isOnBatteryPower() {
        return this.onBattery;
      },
    },
  } satisfies ElectronLike;
  return electron;
}

export type FakeElectron = ReturnType<typeof fakeElectron>;

/** An engine with the real EventBus and the real switch semantics (emit on change only). */
export class FakeEngine implements EngineHandle {
  readonly events = new EventBus();
  readonly grpcUrl = 'grpc://127.0.0.1:8980';
  readonly httpUrl = 'http://127.0.0.1:8981/';
  readonly httpToken = 's3cret/+token';
  calls: string[] = [];
  stopResult: Promise<void> = Promise.resolve();
  metricsNow: TrayMetrics = { queueDepth: 0, running: 0, actionCache: { hits: 0, misses: 0, rate: null } };
  readonly metrics = { snapshot: () => this.metricsNow };
  private enabled: boolean;

  constructor(enabled = true) {
    this.enabled = enabled;
  }
  get executionEnabled() {
    return this.enabled;
  }
  setExecutionEnabled(enabled: boolean) {
    this.calls.push(`setExecutionEnabled(${enabled})`);
    if (enabled === this.enabled) return;
    this.enabled = enabled;
    this.events.emit({ type: 'execution.toggled', at: Date.now(), enabled });
  }
  stop(options: { drainMs: number }) {
    this.calls.push(`stop(${options.drainMs})`);
    return this.stopResult;
  }

  // --- the polite farm, as the real engine offers it -------------------------
  farmNow: FarmStatus = { mode: 'polite', slots: 8, maxSlots: 8, reason: 'machine free', summary: '8 of 8 slots: machine free', background: true };
  healthNow: HealthReport = { at: 0, problems: [] };
  private healthListeners = new Set<(r: HealthReport) => void>();
  readonly farm = { status: () => this.farmNow };
  readonly health = {
    current: () => this.healthNow,
    onChange: (l: (r: HealthReport) => void) => {
      this.healthListeners.add(l);
      return () => this.healthListeners.delete(l);
    },
  };
  setMode(mode: FarmMode) {
    this.calls.push(`setMode(${mode})`);
    this.farmChanged({ mode, background: mode === 'polite' });
  }
  pause(minutes?: number) {
    this.calls.push(`pause(${minutes ?? ''})`);
    const since = Date.now();
    this.farmChanged({ slots: 0, reason: 'paused', paused: minutes === undefined ? { since } : { since, until: since + minutes * 60_000 } });
  }
  resume() {
    this.calls.push('resume()');
    this.farmChanged({ slots: this.farmNow.maxSlots, reason: 'machine free', paused: undefined });
  }
  /** What the engine's farm does on a change: a new status in a farm.changed event. */
  farmChanged(patch: Partial<FarmStatus>) {
    const next = { ...this.farmNow, ...patch };
    this.farmNow = { ...next, summary: describeSlots(next.slots, next.maxSlots, next.reason) };
    this.events.emit({ type: 'farm.changed', at: Date.now(), status: this.farmNow });
  }
  /** What the health monitor does when its report changes. */
  setProblems(problems: HealthProblem[]) {
    this.healthNow = { at: Date.now(), problems };
    for (const l of this.healthListeners) l(this.healthNow);
  }
}
