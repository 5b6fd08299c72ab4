import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KilnTray } from '../../electron/tray';
import { xdgLoginItem, type LoginItem } from '../../electron/login-item';
import { fakeElectron, FakeEngine, FakeTray, type FakeElectron } from './fakes';

describe('KilnTray', () => {
  let electron: FakeElectron;
  let engine: FakeEngine;
  let tray: FakeTray;
  let kiln: KilnTray;
  const opened: string[] = [];

  function makeTray(platform: NodeJS.Platform = 'linux', loginItem?: LoginItem, log?: (m: string) => void) {
    kiln = new KilnTray({
      electron,
      iconDir: '/icons',
      platform,
      loginItem,
      log,
      openDashboard: () => opened.push('dashboard'),
      quit: () => opened.push('quit'),
      throttleMs: 500,
    });
    tray = FakeTray.created.at(-1)!;
    kiln.attach(engine);
  }

  /** Clicks a menu item and waits for the menu to be rebuilt (the fake's own checkbox flip is not proof). */
  async function clickAndRebuild(label: string) {
    const builds = tray.menuBuilds;
    tray.click(label);
    await vi.waitFor(() => expect(tray.menuBuilds).toBeGreaterThan(builds));
  }

  beforeEach(() => {
    vi.useFakeTimers();
    electron = fakeElectron();
    engine = new FakeEngine(true);
    opened.length = 0;
  });
  afterEach(() => {
    kiln.destroy();
    vi.useRealTimers();
  });

  it('flips the engine switch from the menu, and follows the event the dashboard also sees', () => {
    makeTray();
    const seenByDashboard: boolean[] = [];
    engine.events.on('execution.toggled', (e) => seenByDashboard.push(e.enabled));

    tray.click('Disable execution');

    expect(engine.calls).toEqual(['setExecutionEnabled(false)']);
    expect(seenByDashboard).toEqual([false]);
    // At once, without waiting for the throttled repaint.
    expect(tray.item('Enable execution')).toBeDefined();
    expect(tray.icon).toBe('/icons/paused-32.png');

    tray.click('Enable execution');
    expect(engine.executionEnabled).toBe(true);
    expect(seenByDashboard).toEqual([false, true]);
    expect(tray.item('Disable execution')).toBeDefined();
    expect(tray.icon).toBe('/icons/idle-32.png');
  });

  it('shows a toggle made in the dashboard in its menu, icon and tooltip', () => {
    makeTray();
    // The dashboard's POST /api/execution goes through the same engine switch.
    engine.setExecutionEnabled(false);

    expect(tray.item('Enable execution')).toBeDefined();
    expect(tray.item(/^Kiln — execution paused/)?.enabled).toBe(false);
    expect(tray.icon).toBe('/icons/paused-32.png');
    expect(tray.tooltip).toMatch(/paused/);
  });

  it('repaints icon and tooltip from engine activity, once per burst and with the latest figures', () => {
    makeTray();
    const before = tray.images.length;
    engine.metricsNow = { queueDepth: 3, running: 2, actionCache: { hits: 3, misses: 1, rate: 0.75 } };
    for (let i = 0; i < 100; i++) engine.events.emit({ type: 'worker.slot', at: i, slot: i % 2, busy: true });

    expect(tray.images.length).toBe(before); // nothing yet: throttled
    vi.advanceTimersByTime(500);
    expect(tray.images.slice(before)).toEqual(['/icons/executing-32.png']);
    expect(tray.tooltip).toContain('2 running · 3 queued · cache hits 75%');

    engine.metricsNow = { queueDepth: 0, running: 0, actionCache: { hits: 4, misses: 1, rate: 0.8 } };
    engine.events.emit({ type: 'worker.slot', at: 200, slot: 0, busy: false });
    vi.advanceTimersByTime(500);
    expect(tray.icon).toBe('/icons/idle-32.png');
    expect(tray.tooltip).toContain('0 running · 0 queued · cache hits 80%');
  });

  it('turns red when Kiln fails to run an action, and recovers on the next normal finish', () => {
    makeTray();
    const finished = (outcome: 'error' | 'failure') =>
      engine.events.emit({
        type: 'action.finished',
        id: 'a',
        at: 1,
        outcome,
        message: 'cannot stage inputs',
        timing: { queuedMs: 0, inputFetchMs: 0, executionMs: 0, outputUploadMs: 0, totalMs: 0 },
      });
    finished('error');
    vi.advanceTimersByTime(500);
    expect(tray.icon).toBe('/icons/error-32.png');
    expect(tray.tooltip).toContain('cannot stage inputs');

    finished('failure'); // a failing build step is not Kiln's problem
    vi.advanceTimersByTime(500);
    expect(tray.icon).toBe('/icons/idle-32.png');
  });

  it('copies Bazel flags for this engine', () => {
    makeTray();
    tray.click('Copy Bazel flags');
    expect(electron.clipboard.text).toContain('build --remote_executor=grpc://127.0.0.1:8980\n');
  });

  it('offers Start at login through Electron on macOS and Windows, and passes the start-hidden flag', async () => {
    makeTray('darwin');
    expect(tray.icon).toBe('/icons/idle-16.png');
    expect(tray.item('Start at login')?.checked).toBe(false);
    await clickAndRebuild('Start at login');
    expect(electron.app.loginItemCalls).toEqual([{ openAtLogin: true, args: ['--hidden'] }]);
    expect(tray.item('Start at login')?.checked).toBe(true);
    kiln.destroy();

    // Windows finds an entry made with args only when asked with the same args.
    makeTray('win32');
    expect(tray.item('Start at login')?.checked).toBe(true);
    await clickAndRebuild('Start at login');
    expect(electron.app.loginItemCalls.at(-1)).toEqual({ openAtLogin: false, args: ['--hidden'] });
    expect(tray.item('Start at login')?.checked).toBe(false);
  });

  it('offers Start at login on Linux as an XDG autostart entry, checked while the entry exists', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kiln-tray-login-'));
    try {
      const entry = join(root, 'autostart', 'kiln.desktop');
      makeTray('linux', xdgLoginItem({ env: { XDG_CONFIG_HOME: root }, home: '/nonexistent', execPath: '/opt/Kiln/kiln' }));
      expect(tray.item('Start at login')?.checked).toBe(false);

      await clickAndRebuild('Start at login');
      expect(tray.item('Start at login')?.checked).toBe(true);
      expect(await readFile(entry, 'utf8')).toContain('\nExec=/opt/Kiln/kiln --hidden\n');
      expect(electron.app.loginItemCalls).toEqual([]);

      await clickAndRebuild('Start at login');
      expect(tray.item('Start at login')?.checked).toBe(false);
      await expect(readFile(entry)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('shows Start at login as it really is when changing it fails, and says why', async () => {
    const logs: string[] = [];
    const failing: LoginItem = { isEnabled: () => false, setEnabled: () => Promise.reject(new Error('EACCES')) };
    makeTray('linux', failing, (m) => logs.push(m));
    await clickAndRebuild('Start at login'); // Electron ticks the box first
    expect(tray.item('Start at login')?.checked).toBe(false);
    expect(logs).toEqual(['kiln: could not change Start at login: Error: EACCES']);
  });

  it('offers no Start at login where there is no way to do it', () => {
    makeTray('freebsd');
    expect(tray.item('Start at login')).toBeUndefined();
  });

  it('opens the dashboard and quits from the menu', () => {
    makeTray();
    tray.click('Open dashboard');
    tray.emit('click'); // left click, outside macOS
    tray.click('Quit Kiln');
    expect(opened).toEqual(['dashboard', 'dashboard', 'quit']);
  });

  it('stays, red, when the engine did not start, offering only Quit', () => {
    kiln = new KilnTray({ electron, iconDir: '/icons', platform: 'linux', openDashboard: () => {}, quit: () => {} });
    tray = FakeTray.created.at(-1)!;
    kiln.showStartupError('cannot listen on 127.0.0.1:8980');
    expect(tray.icon).toBe('/icons/error-32.png');
    expect(tray.item(/could not start: cannot listen/)).toBeDefined();
    expect(tray.item('Disable execution')).toBeUndefined();
    expect(tray.item('Quit Kiln')).toBeDefined();
  });

  it('stops listening to the engine once destroyed', () => {
    makeTray();
    kiln.destroy();
    engine.setExecutionEnabled(false);
    vi.advanceTimersByTime(1000);
    expect(tray.item('Disable execution')).toBeDefined();
    expect(tray.destroyed).toBe(true);
  });
  it('switches the farm mode from a submenu, and follows a switch made in the dashboard', () => {
    makeTray();
    expect(tray.item('Polite — yield to the desk')).toMatchObject({ type: 'radio', checked: true });
    tray.click('All-out — every core');
    expect(engine.calls).toEqual(['setMode(all-out)']);
    expect(tray.item('All-out — every core')?.checked).toBe(true);
    expect(tray.item('Polite — yield to the desk')?.checked).toBe(false);
    // The dashboard's PUT /api/mode goes through the same engine.
    engine.setMode('normal');
    expect(tray.item('Normal — fixed slots')?.checked).toBe(true);
  });

  it('says the slots and why in the tooltip', () => {
    makeTray();
    engine.farmChanged({ slots: 2, reason: 'on battery' });
    expect(tray.tooltip).toContain('2 of 8 slots: on battery');
  });

  it('pauses the farm for 15 minutes, an hour or until resumed, and offers Resume while paused', () => {
    makeTray();
    tray.click('For 15 minutes');
    expect(engine.calls).toEqual(['pause(15)']);
    expect(tray.icon).toBe('/icons/paused-32.png');
    expect(tray.item(/^Kiln — farm paused until \d\d:\d\d$/)).toBeDefined();
    expect(tray.item('For 1 hour')).toBeUndefined();
    tray.click(/^Resume \(paused until \d\d:\d\d\)$/);
    expect(tray.icon).toBe('/icons/idle-32.png');
    tray.click('For 1 hour');
    tray.click(/^Resume/);
    tray.click('Until resumed');
    expect(tray.item('Resume (paused until resumed)')).toBeDefined();
    expect(engine.calls).toEqual(['pause(15)', 'resume()', 'pause(60)', 'resume()', 'pause()']);
  });

  it('shows the worst health problem: red for an error, in words in the tooltip for a warning', () => {
    makeTray();
    const problem = (severity: 'error' | 'warning', title: string) => ({ id: title, severity, title, message: `${title}: do something`, since: 0 });
    engine.setProblems([problem('error', 'Execution is off while Bazel waits'), problem('warning', 'Queue far beyond the slots')]);
    expect(tray.icon).toBe('/icons/error-32.png');
    expect(tray.item('Kiln — execution is off while bazel waits')).toBeDefined();
    engine.setProblems([problem('warning', 'Queue far beyond the slots')]);
    expect(tray.icon).toBe('/icons/idle-32.png');
    expect(tray.tooltip.split('\n')[1]).toBe('Queue far beyond the slots');
    engine.setProblems([]);
    expect(tray.tooltip).not.toContain('Queue far beyond');
    // A note (a cache evicting at its budget, as it should) is not worth the tray's attention.
    engine.setProblems([{ id: 'cache-nearly-full', severity: 'info', title: 'The cache is nearly at its budget', message: 'm', since: 0 }]);
    expect(tray.tooltip).not.toContain('cache is nearly');
  });
});
