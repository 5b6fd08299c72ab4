// The tray icon: status at a glance, and the execution switch without opening a window.
// It follows engine events rather than its own clicks, so a toggle made in the dashboard
// shows here exactly like one made here.
import { join } from 'node:path';
import { bazelFlags } from './bazel-flags';
import type { KilnEvent } from '../engine/events/event-bus';
import type { EngineHandle } from './engine-handle';
import type { ElectronLike, MenuItemConstructorOptions, TrayLike } from './electron-like';
import { platformLoginItem, type LoginItem } from './login-item';
import { coalesce, realTimers, type Coalesced, type Timers } from './throttle';
import { pausedUntil, statusLine, trayStatus, trayTooltip, type TrayState, type TrayStatus } from './tray-view';
import { FARM_MODES, type FarmMode, type HealthProblem } from '../engine/common/farm-modes';

const MODE_LABELS: Record<FarmMode, string> = {
  polite: 'Polite — yield to the desk',
  normal: 'Normal — fixed slots',
  'all-out': 'All-out — every core',
};

/** The pause choices: label and minutes (undefined: until resumed). */
const PAUSES: [string, number | undefined][] = [
  ['For 15 minutes', 15],
  ['For 1 hour', 60],
  ['Until resumed', undefined],
];

export { HIDDEN_FLAG } from './login-item';

export interface KilnTrayOptions {
  electron: Pick<ElectronLike, 'app' | 'Tray' | 'Menu' | 'nativeImage' | 'clipboard'>;
  /** Folder holding {status}-{size}.png (+ @2x) icons. */
  iconDir: string;
  platform: NodeJS.Platform;
  openDashboard(): void;
  quit(): void;
  /** "Start at login"; defaults to the platform's (none outside macOS, Windows and Linux). */
  loginItem?: LoginItem;
  /** Where a failed menu action is reported. */
  log?: (message: string) => void;
  /** Repaints driven by engine activity happen at most this often. */
  throttleMs?: number;
  timers?: Timers;
}

export class KilnTray {
  private readonly tray: TrayLike;
  private engine: EngineHandle | undefined;
  private flags: () => string = () => '';
  private state: TrayState = { executionEnabled: false, starting: true };
  private quitting = false;
  private destroyed = false;
  private shown: { status?: TrayStatus; tooltip?: string; menuKey?: string } = {};
  private readonly unsubscribe: (() => void)[] = [];
  private readonly refreshSoon: Coalesced;
  private readonly loginItem: LoginItem | undefined;

  constructor(private readonly options: KilnTrayOptions) {
    this.refreshSoon = coalesce(() => this.refresh(), options.throttleMs ?? 500, options.timers ?? realTimers);
    this.loginItem = options.loginItem ?? platformLoginItem(options.platform, options.electron.app);
    this.tray = new options.electron.Tray(this.image('idle'));
    // macOS opens the menu on click; elsewhere a click means "show me Kiln".
    if (options.platform !== 'darwin') this.tray.on('click', () => options.openDashboard());
    this.render();
  }

  /** `flags` makes the "Copy Bazel flags" text (LAN mode: the same lines as GET /api/connect). */
  attach(engine: EngineHandle, flags: () => string = () => bazelFlags(engine.grpcUrl)): void {
    this.engine = engine;
    this.flags = flags;
    this.state = {
      executionEnabled: engine.executionEnabled,
      metrics: engine.metrics.snapshot(),
      farm: engine.farm?.status(),
      worst: worstForTray(engine.health?.current().problems ?? []),
    };
    this.unsubscribe.push(engine.events.subscribe((e) => this.onEvent(e)));
    if (engine.health) {
      this.unsubscribe.push(
        engine.health.onChange((report) => {
          this.state.worst = worstForTray(report.problems);
          this.refresh();
        }),
      );
    }
    this.refresh();
  }

  private onEvent(e: KilnEvent): void {
    if (e.type === 'farm.changed') {
      // Mode and pause are user-facing too: at once.
      this.state.farm = e.status;
      this.refresh();
      return;
    }
    if (e.type === 'execution.toggled') {
      // The switch is user-facing: show it at once, not at the next throttled tick.
      this.state.executionEnabled = e.enabled;
      this.refresh();
      return;
    }
    if (e.type === 'action.finished') {
      // 'error' is Kiln failing to run an action (not the build failing): worth a red icon
      // until an action completes normally again.
      if (e.outcome === 'error') this.state.problem = `an action failed to run: ${e.message ?? 'internal error'}`;
      else if (e.outcome !== 'cancelled') this.state.problem = undefined;
    }
    this.refreshSoon();
  }

  /** The engine could not start: the tray stays, red, to say why and to offer Quit. */
  showStartupError(message: string): void {
    this.state = { executionEnabled: false, problem: `could not start: ${message}` };
    this.refresh();
  }

  setQuitting(): void {
    this.quitting = true;
    this.refresh();
  }

  destroy(): void {
    this.destroyed = true;
    this.refreshSoon.cancel();
    for (const off of this.unsubscribe.splice(0)) off();
    this.tray.destroy();
  }

  private refresh(): void {
    if (this.engine) this.state.metrics = this.engine.metrics.snapshot();
    this.render();
  }

  private render(): void {
    const status = trayStatus(this.state);
    if (status !== this.shown.status) this.tray.setImage(this.image(status));
    const tooltip = trayTooltip(this.state);
    if (tooltip !== this.shown.tooltip) this.tray.setToolTip(tooltip);
    // Rebuilding an open menu closes it on some platforms: only when its content changes.
    const template = this.menuTemplate();
    const menuKey = JSON.stringify(template, (key, value) => (key === 'click' ? undefined : value));
    if (menuKey !== this.shown.menuKey) {
      this.tray.setContextMenu(this.options.electron.Menu.buildFromTemplate(template));
    }
    this.shown = { status, tooltip, menuKey };
  }

  private menuTemplate(): MenuItemConstructorOptions[] {
    const { clipboard } = this.options.electron;
    const engine = this.engine;
    const items: MenuItemConstructorOptions[] = [
      { label: this.quitting ? 'Kiln — finishing running actions…' : statusLine(this.state), enabled: false },
      { type: 'separator' },
    ];
    if (engine && !this.quitting) {
      items.push(
        {
          label: this.state.executionEnabled ? 'Disable execution' : 'Enable execution',
          click: () => engine.setExecutionEnabled(!engine.executionEnabled),
        },
        ...this.farmItems(engine),
        { label: 'Open dashboard', click: () => this.options.openDashboard() },
        { label: 'Copy Bazel flags', click: () => clipboard.writeText(this.flags()) },
        { type: 'separator' },
      );
    }
    const loginItem = this.loginItem;
    if (loginItem) {
      items.push({
        label: 'Start at login',
        type: 'checkbox',
        checked: loginItem.isEnabled(),
        click: (item) => this.setStartAtLogin(loginItem, item.checked),
      });
    }
    items.push({ label: 'Quit Kiln', enabled: !this.quitting, click: () => this.options.quit() });
    return items;
  }

  /** Mode submenu, and Pause (or Resume while paused), when the engine has a farm. */
  private farmItems(engine: EngineHandle): MenuItemConstructorOptions[] {
    const farm = this.state.farm;
    const { setMode, pause, resume } = engine;
    if (!farm || !setMode || !pause || !resume) return [];
    const items: MenuItemConstructorOptions[] = [
      {
        label: 'Mode',
        submenu: FARM_MODES.map((mode) => ({
          label: MODE_LABELS[mode],
          type: 'radio' as const,
          checked: farm.mode === mode,
          click: () => setMode.call(engine, mode),
        })),
      },
    ];
    if (farm.paused) {
      items.push({ label: `Resume (paused ${pausedUntil(farm.paused)})`, click: () => resume.call(engine) });
    } else {
      items.push({ label: 'Pause', submenu: PAUSES.map(([label, minutes]) => ({ label, click: () => pause.call(engine, minutes) })) });
    }
    return items;
  }

  private setStartAtLogin(loginItem: LoginItem, enabled: boolean): void {
    loginItem
      .setEnabled(enabled)
      .catch((err: unknown) => {
        (this.options.log ?? console.error)(`kiln: could not change Start at login: ${String(err)}`);
      })
      .finally(() => {
        // Electron flipped the checkbox on click: rebuild so it shows what really is, even after a failure.
        if (this.destroyed) return;
        this.shown.menuKey = undefined;
        this.render();
      });
  }

  private image(status: TrayStatus) {
    // 16 px suits macOS and Windows trays; Linux panels are larger. Electron picks @2x itself.
    const size = this.options.platform === 'linux' ? 32 : 16;
    return this.options.electron.nativeImage.createFromPath(join(this.options.iconDir, `${status}-${size}.png`));
  }
}

/** The worst problem that needs a person; notes (severity info) stay in the dashboard's health list. */
function worstForTray(problems: HealthProblem[]): HealthProblem | undefined {
  return problems.find((p) => p.severity !== 'info');
}
