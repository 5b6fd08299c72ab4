// `npm start` (node dist/electron/launch.js): the desktop app where Electron can run,
// the headless engine where it cannot. See launch-plan.ts for the decision.
import { join } from 'node:path';
import { DEFAULT_DRAIN_MS } from './desktop-app';
import { launch, type Headless } from './launch-plan';
import { desktopRunner, downloadElectron, locateElectron } from './launch-probes';
import { relaunchWithFlags, whenLauncherGone } from '../engine/util/relaunch';
import { electronJsFlagsSwitch, missingV8Flags } from '../engine/util/v8-flags';

/** The same engine `kiln serve` runs with no flags, stopped cleanly on Ctrl-C or SIGTERM. */
async function startHeadless(): Promise<Headless> {
  // Loaded here, not at the top: a launcher that hands over (relaunch, Electron) never needs the engine.
  const { loadConfig } = await import('../engine/config-load');
  const { startEngine } = await import('./engine-adapter');
  const engine = await startEngine(loadConfig(), (line) => process.stderr.write(`${line}\n`));
  const exitCode = new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (): void => {
      if (stopping) process.exit(1); // a second Ctrl-C: the user does not want to wait
      stopping = true;
      engine.stop({ drainMs: DEFAULT_DRAIN_MS }).then(
        () => resolve(0),
        (err: unknown) => {
          process.stderr.write(`kiln: error while stopping: ${String(err)}\n`);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    whenLauncherGone(onSignal);
  });
  return { httpUrl: engine.httpUrl, exitCode };
}

if (require.main === module) {
  // dist/electron/launch.js → the app folder whose package.json "main" is the Electron entry.
  const appDir = join(__dirname, '..', '..');
  // The headless engine runs in this Node, so it needs the engine's V8 flags from the start.
  const missing = missingV8Flags(process.execArgv);
  const run = missing.length > 0 ? relaunchWithFlags(missing) : launch({
    env: process.env,
    platform: process.platform,
    locateElectron: () => locateElectron(),
    downloadElectron: (timeoutMs) => downloadElectron(timeoutMs),
    // The engine runs in Electron's main process, whose V8 reads --js-flags only at start.
    runDesktop: desktopRunner({ args: [electronJsFlagsSwitch(), appDir, ...process.argv.slice(2)] }),
    startHeadless,
    print: (line) => process.stderr.write(`${line}\n`),
  });
  run.then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`kiln: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
