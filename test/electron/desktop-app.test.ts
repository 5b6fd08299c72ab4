import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KilnConfig } from '../../engine/config';
import { createDesktopApp, type DesktopAppOptions } from '../../electron/desktop-app';
import { loadConfigFile } from '../../electron/engine-adapter';
import { fakeElectron, FakeEngine, FakeTray, FakeWindow, type FakeElectron } from './fakes';

describe('createDesktopApp', () => {
  let appData: string;
  let electron: FakeElectron;
  let engine: FakeEngine;
  let configs: KilnConfig[];
  let logs: string[];

  beforeEach(async () => {
    appData = await mkdtemp(join(tmpdir(), 'kiln-desktop-'));
    configs = [];
    logs = [];
  });
  afterEach(async () => {
    await rm(appData, { recursive: true, force: true });
  });

  function start(overrides: Partial<DesktopAppOptions> = {}, engineEnabled?: boolean) {
    electron = fakeElectron(appData);
    const desktop = createDesktopApp({
      electron,
      startEngine: async (config) => {
        configs.push(config);
        engine = new FakeEngine(engineEnabled ?? config.executionEnabled);
        return engine;
      },
      loadConfigFile,
      resourceDir: '/app',
      platform: 'linux',
      argv: ['electron', '.'],
      log: (m) => logs.push(m),
      ...overrides,
    });
    electron.app.fireReady();
    return desktop;
  }

  const tray = () => FakeTray.created.at(-1)!;
  const window = () => FakeWindow.created.at(-1)!;

  it('starts the engine with data under userData and opens the dashboard', async () => {
    const desktop = start();
    expect(await desktop.started).toBe(true);
    expect(electron.app.getPath('userData')).toBe(join(appData, 'Kiln'));
    expect(configs[0]!.dataDir).toBe(join(appData, 'Kiln', 'data'));
    expect(configs[0]!.port).toBe(8980);
    expect(window().url).toBe('http://127.0.0.1:8981/#token=s3cret%2F%2Btoken');
    expect(tray().icon).toBe('/app/build/icons/tray/idle-32.png');
  });

  it("reads the user's config.yaml from userData with the engine's loader", async () => {
    await mkdir(join(appData, 'Kiln'), { recursive: true });
    await writeFile(join(appData, 'Kiln', 'config.yaml'), 'port: 9999\nconcurrency: 3\n');
    await start().started;
    expect(configs[0]).toMatchObject({ port: 9999, concurrency: 3, dataDir: join(appData, 'Kiln', 'data') });
  });

  it('reports a broken config.yaml in the tray instead of silently using defaults', async () => {
    await mkdir(join(appData, 'Kiln'), { recursive: true });
    await writeFile(join(appData, 'Kiln', 'config.yaml'), 'prot: 9999\n');
    expect(await start().started).toBe(false);
    expect(configs).toHaveLength(0);
    expect(tray().icon).toBe('/app/build/icons/tray/error-32.png');
    expect(tray().item(/could not start: .*unknown key "prot"/)).toBeDefined();
  });

  it('starts in the tray only when launched at login', async () => {
    await start({ argv: ['kiln', '--hidden'] }).started;
    expect(FakeWindow.created).toHaveLength(0);
    tray().click('Open dashboard');
    expect(FakeWindow.created).toHaveLength(1);
  });

  it('lets a second launch hand over: it quits without an engine, the first shows its window', async () => {
    const first = start();
    await first.started;
    const win = window();
    win.userClose();
    expect(win.visible).toBe(false);

    const second = fakeElectron(appData);
    second.app.hasLock = false;
    let secondEngines = 0;
    const desktop2 = createDesktopApp({
      electron: second,
      startEngine: async () => (secondEngines++, new FakeEngine()),
      loadConfigFile,
      resourceDir: '/app',
      platform: 'linux',
      argv: [],
    });
    second.app.fireReady();
    expect(await desktop2.started).toBe(false);
    expect(second.app.exited).toBe(0);
    expect(secondEngines).toBe(0);

    // Electron then tells the first instance.
    electron.app.emit('second-instance', {}, ['kiln']);
    expect(win.visible).toBe(true);
    expect(win.focused).toBeGreaterThan(0);
  });

  it('keeps running in the tray when the window is closed', async () => {
    await start().started;
    window().userClose();
    expect(window().destroyed).toBe(false);
    expect(window().visible).toBe(false);
    expect(electron.app.exited).toBeUndefined();
    expect(electron.app.listenerCount('window-all-closed')).toBe(1);
  });

  it('quits only after the engine stopped: stop accepting and drain (bounded) happen inside engine.stop', async () => {
    const desktop = start({ drainMs: 10_000 });
    await desktop.started;
    let finishStop!: () => void;
    engine.stopResult = new Promise((resolve) => (finishStop = resolve));

    tray().click('Quit Kiln');
    await new Promise((r) => setImmediate(r));
    expect(engine.calls).toEqual(['stop(10000)']);
    expect(electron.app.exited).toBeUndefined(); // still draining
    expect(window().destroyed).toBe(true);
    expect(tray().item(/finishing running actions/)).toBeDefined();
    expect(tray().item('Disable execution')).toBeUndefined();

    electron.app.quit(); // impatient second Quit: no second stop
    finishStop();
    await desktop.stopped;
    expect(engine.calls).toEqual(['stop(10000)']);
    expect(electron.app.exited).toBe(0);
    expect(tray().destroyed).toBe(true);
  });

  it('quits anyway when the engine does not stop within drain + grace', async () => {
    const desktop = start({ drainMs: 20, stopGraceMs: 20 });
    await desktop.started;
    engine.stopResult = new Promise(() => {});
    electron.app.quit();
    await desktop.stopped;
    expect(electron.app.exited).toBe(0);
    expect(logs.join('\n')).toMatch(/did not stop within 40 ms/);
  });

  it('remembers the execution switch across a restart, whichever side flipped it', async () => {
    const first = start();
    await first.started;
    tray().click('Disable execution');
    await waitFor(async () => (await readSettings()).executionEnabled === false);
    electron.app.quit();
    await first.stopped;

    const second = start();
    await second.started;
    expect(configs[1]!.executionEnabled).toBe(false);
    expect(tray().item('Enable execution')).toBeDefined();

    engine.setExecutionEnabled(true); // from the dashboard this time
    await waitFor(async () => (await readSettings()).executionEnabled === true);
  });

  it('keeps the tray, red, when the engine cannot start', async () => {
    const desktop = start({
      startEngine: async () => {
        throw new Error('cannot listen on 127.0.0.1:8980: address in use');
      },
    });
    expect(await desktop.started).toBe(false);
    expect(tray().icon).toBe('/app/build/icons/tray/error-32.png');
    expect(logs.join('\n')).toContain('address in use');
    electron.app.quit();
    await desktop.stopped;
    expect(electron.app.exited).toBe(0);
  });

  async function readSettings(): Promise<{ executionEnabled?: boolean }> {
    try {
      return JSON.parse(await readFile(join(appData, 'Kiln', 'settings.json'), 'utf8'));
    } catch {
      return {};
    }
  }
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
