// `npm start`: run the desktop app if this machine can, otherwise the headless engine,
// and say which in one line. Every probe is injected so the decision is tested alone;
// launch.ts supplies the real ones.

export type ElectronLocation =
  | { installed: false }
  /** binary is undefined when the package is installed but its binary was never fetched. */
  | { installed: true; binary?: string; binaryExists: boolean };

export type Outcome = { ok: true } | { ok: false; reason: string };

export type DesktopRun =
  /** Electron is up (or handed over to an already running Kiln); resolves with its exit code. */
  | { kind: 'running'; exitCode: Promise<number> }
  | { kind: 'failed'; reason: string };

export interface Headless {
  httpUrl: string;
  /** Resolves with the exit code once the engine has stopped (on a signal). */
  exitCode: Promise<number>;
}

export interface LaunchDeps {
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
  locateElectron(): ElectronLocation;
  /** Fetches the Electron binary; must settle within the given time. */
  downloadElectron(timeoutMs: number): Promise<Outcome>;
  /** Starts Electron; reports failure if it exits with an error within graceMs. */
  runDesktop(binary: string, graceMs: number): Promise<DesktopRun>;
  startHeadless(): Promise<Headless>;
  print(line: string): void;
}

/** Long enough for a ~100 MB download on a decent link; offline fails in seconds anyway. */
export const DOWNLOAD_TIMEOUT_MS = 90_000;
/** Electron that cannot start (missing libraries, sandbox, no display) exits well within this. */
export const START_GRACE_MS = 5_000;

export async function launch(deps: LaunchDeps): Promise<number> {
  const result = await tryDesktop(deps);
  if (result.kind === 'running') return result.exitCode;
  const headless = await deps.startHeadless();
  deps.print(`kiln: the desktop app is not available here (${result.reason}); running headless — dashboard at ${headless.httpUrl}`);
  return headless.exitCode;
}

async function tryDesktop(deps: LaunchDeps): Promise<DesktopRun> {
  const failed = (reason: string): DesktopRun => ({ kind: 'failed', reason });
  const { env } = deps;
  if (env.KILN_HEADLESS === '1') return failed('KILN_HEADLESS=1');
  if (needsDisplay(deps.platform) && !env.DISPLAY && !env.WAYLAND_DISPLAY) return failed('no display');

  let where = deps.locateElectron();
  if (!where.installed) return failed('Electron is not installed');
  if (!where.binaryExists) {
    if (env.ELECTRON_SKIP_BINARY_DOWNLOAD) return failed('the Electron binary is missing and ELECTRON_SKIP_BINARY_DOWNLOAD is set');
    deps.print('kiln: fetching the Electron binary (first start)…');
    const download = await deps.downloadElectron(DOWNLOAD_TIMEOUT_MS);
    if (!download.ok) return failed(`the Electron binary could not be downloaded: ${download.reason}`);
    where = deps.locateElectron();
    if (!where.installed || !where.binaryExists || !where.binary) return failed('the Electron binary is still missing after download');
  }
  if (!where.binary) return failed('the Electron binary is missing');

  const run = await deps.runDesktop(where.binary, START_GRACE_MS);
  return run.kind === 'failed' ? failed(`Electron did not start: ${run.reason}`) : run;
}

/** X11/Wayland platforms: without a display server Electron cannot open anything. */
function needsDisplay(platform: NodeJS.Platform): boolean {
  return platform !== 'darwin' && platform !== 'win32';
}
