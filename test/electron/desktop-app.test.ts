import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultDataDir, type KilnConfig } from '../../engine/config';
import { saveSettings } from '../../engine/settings';
import { bazelrcLines } from '../../engine/lan/connect';
import { kilnCaPath } from '../../engine/lan/access';
import { ensureTlsMaterial } from '../../engine/tls/certificates';
import { createDesktopApp, type DesktopAppOptions } from '../../electron/desktop-app';
import { loadConfigFile } from '../../electron/engine-adapter';
import { fakeElectron, FakeEngine, FakeTray, FakeWindow, preventable, type FakeElectron } from './fakes';

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
      dataDir: join(appData, 'data'),
      ...overrides,
    });
    electron.app.fireReady();
    return desktop;
  }

  const tray = () => FakeTray.created.at(-1)!;
  const window = () => FakeWindow.created.at(-1)!;

  it("starts the engine in kiln serve's data folder and opens the dashboard", async () => {
    const xdg = process.env.XDG_DATA_HOME;
    process.env.XDG_DATA_HOME = join(appData, 'xdg'); // keeps defaultDataDir() inside the test's folder on Linux
    let desktop;
    try {
      desktop = start({ dataDir: undefined });
      expect(await desktop.started).toBe(true);
      expect(configs[0]!.dataDir).toBe(defaultDataDir());
    } finally {
      if (xdg === undefined) delete process.env.XDG_DATA_HOME;
      else process.env.XDG_DATA_HOME = xdg;
    }
    expect(electron.app.getPath('userData')).toBe(join(appData, 'Kiln'));
    expect(configs[0]!.port).toBe(8980);
    expect(window().url).toBe('http://127.0.0.1:8981/#token=s3cret%2F%2Btoken');
    expect(tray().icon).toBe('/app/build/icons/tray/idle-32.png');
  });

  it("reads the user's config.yaml from userData with the engine's loader", async () => {
    await mkdir(join(appData, 'Kiln'), { recursive: true });
    await writeFile(join(appData, 'Kiln', 'config.yaml'), 'port: 9999\nconcurrency: 3\n');
    await start().started;
    expect(configs[0]).toMatchObject({ port: 9999, concurrency: 3, dataDir: join(appData, 'data') });
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

  it('starts in the tray on macOS when the login item opened it (macOS drops its args)', async () => {
    const launch = (wasOpenedAtLogin: boolean) => {
      electron = fakeElectron(appData);
      electron.app.loginItem.wasOpenedAtLogin = wasOpenedAtLogin;
      const desktop = createDesktopApp({
        electron,
        startEngine: async () => (engine = new FakeEngine()),
        loadConfigFile,
        resourceDir: '/app',
        platform: 'darwin',
        argv: ['/Applications/Kiln.app/Contents/MacOS/Kiln'],
        log: (m) => logs.push(m),
        dataDir: join(appData, 'data'),
      });
      electron.app.fireReady();
      return desktop.started;
    };
    expect(await launch(true)).toBe(true);
    expect(FakeWindow.created).toHaveLength(0);
    electron.app.quit();

    expect(await launch(false)).toBe(true);
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

  it("applies the dashboard's saved LAN switch when no config file names a host", async () => {
    saveSettings(join(appData, 'data'), { lan: true });
    await start().started;
    expect(configs[0]!.host).toBe('0.0.0.0');
  });

  it('lets a host in config.yaml win over the saved LAN switch', async () => {
    saveSettings(join(appData, 'data'), { lan: true });
    await mkdir(join(appData, 'Kiln'), { recursive: true });
    await writeFile(join(appData, 'Kiln', 'config.yaml'), 'host: 127.0.0.1\n');
    await start().started;
    expect(configs[0]!.host).toBe('127.0.0.1');
  });

  it('still reads the execution switch from the settings.json of earlier versions', async () => {
    await mkdir(join(appData, 'Kiln'), { recursive: true });
    await writeFile(join(appData, 'Kiln', 'settings.json'), '{"executionEnabled": false}');
    await start().started;
    expect(configs[0]!.executionEnabled).toBe(false);
  });

  describe('in LAN mode', () => {
    function startLan() {
      return start({
        startEngine: async (config) => {
          configs.push(config);
          engine = new FakeEngine(true);
          Object.assign(engine, { grpcUrl: 'grpcs://0.0.0.0:8980', httpUrl: 'https://0.0.0.0:8981/' });
          return engine;
        },
      });
    }

    it("opens the dashboard over loopback and trusts Kiln's CA for exactly that origin", async () => {
      const dataDir = join(appData, 'data');
      const own = ensureTlsMaterial(join(dataDir, 'tls'), ['127.0.0.1', 'localhost']);
      const stranger = ensureTlsMaterial(join(appData, 'other-ca'), ['127.0.0.1', 'localhost']);
      saveSettings(dataDir, { lan: true });
      expect(await startLan().started).toBe(true);
      expect(window().url).toBe('https://127.0.0.1:8981/#token=s3cret%2F%2Btoken');

      const decide = (url: string, pem: string) => {
        const event = preventable();
        let trusted: boolean | undefined;
        electron.app.emit('certificate-error', event, {}, url, 'net::ERR_CERT_AUTHORITY_INVALID', { data: pem }, (ok: boolean) => (trusted = ok));
        return { trusted, prevented: event.defaultPrevented };
      };
      expect(electron.app.listenerCount('certificate-error')).toBe(1);
      expect(decide('https://127.0.0.1:8981/api/status', own.certPem)).toEqual({ trusted: true, prevented: true });
      // Another port or host, another CA, or the CA itself as the server's certificate: refused.
      expect(decide('https://127.0.0.1:8982/', own.certPem)).toEqual({ trusted: false, prevented: false });
      expect(decide('https://example.com:8981/', own.certPem)).toEqual({ trusted: false, prevented: false });
      expect(decide('https://127.0.0.1:8981/', stranger.certPem)).toEqual({ trusted: false, prevented: false });
      expect(decide('https://127.0.0.1:8981/', own.caCertPem)).toEqual({ trusted: false, prevented: false });
      expect(decide('https://127.0.0.1:8981/', 'not a certificate')).toEqual({ trusted: false, prevented: false });
      expect(kilnCaPath(dataDir)).toBe(own.caPath);
    }, 60_000);

    it('copies the same Bazel lines as GET /api/connect', async () => {
      const dataDir = join(appData, 'data');
      saveSettings(dataDir, { lan: true });
      ensureTlsMaterial(join(dataDir, 'tls'), ['127.0.0.1']);
      await startLan().started;
      tray().click('Copy Bazel flags');
      const lines = electron.clipboard.text.trimEnd().split('\n');
      const connect = bazelrcLines({ host: lines[0]!.replace(/^.*grpcs:\/\/(.*):8980$/, '$1'), grpcPort: 8980, tls: true, caPath: kilnCaPath(dataDir) });
      expect(lines.slice(0, 3)).toEqual(connect);
      expect(lines[0]).not.toContain('0.0.0.0');
      expect(lines[1]).toBe(`build --tls_certificate=${kilnCaPath(dataDir)}`);
      expect(lines[2]).toBe('build --remote_header=authorization="Bearer TOKEN"');
      expect(lines.slice(3)).toEqual(['build --remote_timeout=3600']);
    }, 60_000);

    it('copies just the executor line on plain loopback', async () => {
      await start().started;
      tray().click('Copy Bazel flags');
      expect(electron.clipboard.text).toBe('build --remote_executor=grpc://127.0.0.1:8980\nbuild --remote_timeout=3600\n');
    });
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
      return JSON.parse(await readFile(join(appData, 'Kiln', 'desktop-settings.json'), 'utf8'));
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
