import { describe, expect, it } from 'vitest';
import { DashboardWindow } from '../../electron/window';
import { fakeElectron, FakeWindow, preventable } from './fakes';

function setup() {
  const electron = fakeElectron();
  const dashboard = new DashboardWindow({ electron, httpUrl: 'http://127.0.0.1:8981/', token: 'a b/c' });
  dashboard.show();
  const win = FakeWindow.created[0]!;
  win.emit('ready-to-show');
  return { electron, dashboard, win };
}

describe('DashboardWindow', () => {
  it('loads the dashboard with the token in the fragment, in a locked-down renderer', () => {
    const { win } = setup();
    expect(win.url).toBe('http://127.0.0.1:8981/#token=a%20b%2Fc');
    expect(win.options.webPreferences).toMatchObject({ contextIsolation: true, nodeIntegration: false, sandbox: true });
    expect(win.options.webPreferences?.preload).toBeUndefined();
    expect(win.visible).toBe(true);
  });

  it('hides on close instead of closing, and comes back on show', () => {
    const { dashboard, win } = setup();
    win.userClose();
    expect(win.visible).toBe(false);
    expect(win.destroyed).toBe(false);

    win.minimized = true;
    dashboard.show();
    expect(FakeWindow.created).toHaveLength(1);
    expect(win.visible).toBe(true);
    expect(win.minimized).toBe(false);
    expect(win.focused).toBeGreaterThan(0);
  });

  it('really closes once destroyed for quitting, and a later show makes a new window', () => {
    const { dashboard, win } = setup();
    dashboard.destroy();
    expect(win.destroyed).toBe(true);
    dashboard.show();
    expect(FakeWindow.created).toHaveLength(2);
  });

  it('keeps navigation on the dashboard origin and sends other web links to the browser', () => {
    const { electron, win } = setup();
    const inside = preventable({ url: 'http://127.0.0.1:8981/#/actions/1' });
    win.webContents.emit('will-navigate', inside);
    expect(inside.defaultPrevented).toBe(false);

    const outside = preventable({ url: 'https://bazel.build/remote/rbe' });
    win.webContents.emit('will-navigate', outside);
    expect(outside.defaultPrevented).toBe(true);

    const otherPort = preventable({ url: 'http://127.0.0.1:9999/' });
    win.webContents.emit('will-redirect', otherPort);
    expect(otherPort.defaultPrevented).toBe(true);

    const file = preventable({ url: 'file:///etc/passwd' });
    win.webContents.emit('will-navigate', file);
    expect(file.defaultPrevented).toBe(true);

    expect(electron.shell.opened).toEqual(['https://bazel.build/remote/rbe', 'http://127.0.0.1:9999/']);
  });

  it('never opens new windows: web links go to the system browser, anything else nowhere', () => {
    const { electron, win } = setup();
    expect(win.webContents.openHandler!({ url: 'https://github.com/kiln' })).toEqual({ action: 'deny' });
    expect(win.webContents.openHandler!({ url: 'javascript:alert(1)' })).toEqual({ action: 'deny' });
    expect(electron.shell.opened).toEqual(['https://github.com/kiln']);
  });
});
