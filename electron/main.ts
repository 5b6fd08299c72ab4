// Electron main-process entry (package.json "main"). Wiring only; the behaviour lives in
// desktop-app.ts and the modules it composes.
import electron = require('electron');
import { join } from 'node:path';
import { createDesktopApp } from './desktop-app';
import type { ElectronLike } from './electron-like';
import { loadConfigFile, startEngine } from './engine-adapter';

// Typing the real module as ElectronLike is what checks the shell's narrow view against Electron's API.
const shell: ElectronLike = electron;

createDesktopApp({
  electron: shell,
  startEngine: (config, extras) => startEngine(config, undefined, extras),
  loadConfigFile,
  // dist/electron/ → the app root (the checkout, or app.asar when packaged).
  resourceDir: join(__dirname, '..', '..'),
  platform: process.platform,
  argv: process.argv,
});

// Ctrl-C in the terminal that ran `npm start`, or a service manager: the same clean quit as the tray's.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => electron.app.quit());
