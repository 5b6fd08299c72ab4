import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch, type DesktopRun, type ElectronLocation, type LaunchDeps, type Outcome } from '../../electron/launch-plan';
import { desktopRunner, downloadElectron, firstErrorLine, locateElectron } from '../../electron/launch-probes';

/** A scripted machine: each probe answers as told and records that it was asked. */
function machine(opts: {
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
  locations?: ElectronLocation[];
  download?: Outcome;
  run?: DesktopRun;
}) {
  const asked: string[] = [];
  const printed: string[] = [];
  const locations = [...(opts.locations ?? [{ installed: true, binary: '/e/electron', binaryExists: true }])];
  const deps: LaunchDeps = {
    env: opts.env ?? { DISPLAY: ':0' },
    platform: opts.platform ?? 'linux',
    locateElectron: () => (asked.push('locate'), locations.length > 1 ? locations.shift()! : locations[0]!),
    downloadElectron: async (ms) => (asked.push(`download(${ms})`), opts.download ?? { ok: true }),
    runDesktop: async (binary) => (asked.push(`run(${binary})`), opts.run ?? { kind: 'running', exitCode: Promise.resolve(0) }),
    startHeadless: async () => (asked.push('headless'), { httpUrl: 'http://127.0.0.1:8981/', exitCode: Promise.resolve(0) }),
    print: (line) => printed.push(line),
  };
  return { deps, asked, printed };
}

describe('launch (npm start)', () => {
  it('runs the desktop app when Electron is there, and exits with its code', async () => {
    const m = machine({ run: { kind: 'running', exitCode: Promise.resolve(3) } });
    expect(await launch(m.deps)).toBe(3);
    expect(m.asked).toEqual(['locate', 'run(/e/electron)']);
    expect(m.printed).toEqual([]);
  });

  it('goes headless with one line naming the reason and the dashboard when Electron fails to start', async () => {
    const m = machine({ run: { kind: 'failed', reason: 'libgtk-3.so.0: cannot open shared object file' } });
    expect(await launch(m.deps)).toBe(0);
    expect(m.asked).toEqual(['locate', 'run(/e/electron)', 'headless']);
    expect(m.printed).toEqual([
      'kiln: the desktop app is not available here (Electron did not start: libgtk-3.so.0: cannot open shared object file); running headless — dashboard at http://127.0.0.1:8981/',
    ]);
  });

  it('does not even try Electron without a display', async () => {
    const m = machine({ env: {} });
    await launch(m.deps);
    expect(m.asked).toEqual(['headless']);
    expect(m.printed.at(-1)).toMatch(/\(no display\); running headless — dashboard at http:\/\/127\.0\.0\.1:8981\/$/);
  });

  it('needs no DISPLAY on macOS and Windows', async () => {
    for (const platform of ['darwin', 'win32'] as const) {
      const m = machine({ env: {}, platform });
      await launch(m.deps);
      expect(m.asked).toEqual(['locate', 'run(/e/electron)']);
    }
  });

  it('honours KILN_HEADLESS=1', async () => {
    const m = machine({ env: { DISPLAY: ':0', KILN_HEADLESS: '1' } });
    await launch(m.deps);
    expect(m.asked).toEqual(['headless']);
  });

  it('fetches a missing binary within a bounded time, then runs it', async () => {
    const m = machine({
      locations: [
        { installed: true, binaryExists: false },
        { installed: true, binary: '/e/electron', binaryExists: true },
      ],
    });
    await launch(m.deps);
    expect(m.asked).toEqual(['locate', 'download(90000)', 'locate', 'run(/e/electron)']);
  });

  it('falls back when the download fails (offline) or is disabled', async () => {
    const offline = machine({
      locations: [{ installed: true, binaryExists: false }],
      download: { ok: false, reason: 'getaddrinfo ENOTFOUND github.com' },
    });
    await launch(offline.deps);
    expect(offline.asked).toEqual(['locate', 'download(90000)', 'headless']);
    expect(offline.printed.at(-1)).toContain('(the Electron binary could not be downloaded: getaddrinfo ENOTFOUND github.com)');

    const skip = machine({ env: { DISPLAY: ':0', ELECTRON_SKIP_BINARY_DOWNLOAD: '1' }, locations: [{ installed: true, binaryExists: false }] });
    await launch(skip.deps);
    expect(skip.asked).toEqual(['locate', 'headless']);
  });

  it('falls back when electron is not installed (production install)', async () => {
    const m = machine({ locations: [{ installed: false }] });
    await launch(m.deps);
    expect(m.asked).toEqual(['locate', 'headless']);
    expect(m.printed.at(-1)).toContain('(Electron is not installed)');
  });
});

describe('launch probes', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-launch-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function fakeElectronPackage(name: string, files: Record<string, string>): Promise<(id: string) => string> {
    const pkg = join(dir, name);
    await mkdir(join(pkg, 'dist'), { recursive: true });
    for (const [file, text] of Object.entries(files)) await writeFile(join(pkg, file), text);
    return (id) => {
      if (id !== 'electron/package.json') throw new Error(`unexpected ${id}`);
      return join(pkg, 'package.json');
    };
  }

  it('finds the binary the way require("electron") would, without downloading', async () => {
    const fetched = await fakeElectronPackage('fetched', { 'package.json': '{}', 'path.txt': 'electron', 'dist/electron': '' });
    expect(locateElectron({}, fetched)).toEqual({ installed: true, binary: join(dir, 'fetched', 'dist', 'electron'), binaryExists: true });

    const never = await fakeElectronPackage('never', { 'package.json': '{}' });
    expect(locateElectron({}, never)).toEqual({ installed: true, binaryExists: false });

    const missing = (): string => {
      throw new Error('Cannot find module');
    };
    expect(locateElectron({}, missing)).toEqual({ installed: false });
  });

  it('gives up on a download that hangs, after the time given', async () => {
    const hanging = await fakeElectronPackage('hanging', { 'package.json': '{}', 'install.js': 'setTimeout(() => {}, 60_000);' });
    expect(await downloadElectron(300, hanging)).toEqual({ ok: false, reason: 'no result within 0.3 s' });

    const failing = await fakeElectronPackage('failing', {
      'package.json': '{}',
      'install.js': 'console.error("RequestError: getaddrinfo ENOTFOUND github.com"); process.exit(1);',
    });
    expect(await downloadElectron(20_000, failing)).toEqual({ ok: false, reason: 'RequestError: getaddrinfo ENOTFOUND github.com' });
  });

  it('reports an Electron that dies at start with its error line, and holds its stderr back', async () => {
    const stderr = new PassThrough();
    const run = desktopRunner({
      args: ['-e', 'console.error("[1:0101/0:ERROR] Missing X server or $DISPLAY"); process.exit(1)'],
      stderr,
    });
    expect(await run(process.execPath, 20_000)).toEqual({ kind: 'failed', reason: '[1:0101/0:ERROR] Missing X server or $DISPLAY' });
    expect(stderr.read()).toBeNull();
  });

  it('treats a quick clean exit as success (a second instance handing over)', async () => {
    const run = desktopRunner({ args: ['-e', 'process.exit(0)'], stderr: new PassThrough() });
    const result = await run(process.execPath, 20_000);
    expect(result.kind).toBe('running');
    expect(result.kind === 'running' && (await result.exitCode)).toBe(0);
  });

  it('passes stderr on and forwards the exit code once Electron is past the grace period', async () => {
    const stderr = new PassThrough();
    const run = desktopRunner({
      args: ['-e', 'console.error("warming up, as node: " + (process.env.ELECTRON_RUN_AS_NODE ?? "no")); setTimeout(() => process.exit(7), 600)'],
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stderr,
      signals: [],
    });
    const result = await run(process.execPath, 200);
    expect(result.kind).toBe('running');
    expect(result.kind === 'running' && (await result.exitCode)).toBe(7);
    // ELECTRON_RUN_AS_NODE from the user's shell would turn Electron into plain Node: dropped.
    expect(String(stderr.read())).toContain('warming up, as node: no');
  });

  it('picks the telling line of an error output', () => {
    expect(firstErrorLine('\nsome noise\n[ERROR:ozone] Failed to open display\nmore\n')).toBe('[ERROR:ozone] Failed to open display');
    expect(firstErrorLine('just this\n')).toBe('just this');
    expect(firstErrorLine('')).toBeUndefined();
  });
});
