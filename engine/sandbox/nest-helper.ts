// Where Kiln's native helpers are, building each from its source with the
// host's C compiler when it is missing or older than the source: `npm run
// build` does it, and a Kiln run from sources does it at start. A packaged app
// ships them unpacked beside app.asar (electron-builder's asarUnpack) and never
// builds them.
// - kiln-nest (native/kiln-nest.c, see nest-args.ts): without it, a non-root
//   Kiln gives each action a bubblewrap of its own.
// - kiln-spawn (native/kiln-spawn.c): a slot's agent starts actions through it
//   instead of forking itself; without it, the agent forks as before.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isPackedArchive, packageRoot, unpackedRoot } from '../util/package-root';

export type NativeHelperName = 'kiln-nest' | 'kiln-spawn';

/** Relative to Kiln's package root: a helper's source, and where `npm run build` puts its binary. */
const sourceInPackage = (name: NativeHelperName) => join('engine', 'sandbox', 'native', `${name}.c`);
const binaryInPackage = (name: NativeHelperName) => join('dist', 'native', name);

export const NEST_SOURCE = join(packageRoot(__dirname), sourceInPackage('kiln-nest'));
export const NEST_BINARY = join(packageRoot(__dirname), binaryInPackage('kiln-nest'));
export const SPAWN_SOURCE = join(packageRoot(__dirname), sourceInPackage('kiln-spawn'));
export const SPAWN_BINARY = join(packageRoot(__dirname), binaryInPackage('kiln-spawn'));

export type NestHelperFound = { path: string; why?: undefined } | { path?: undefined; why: string };

/**
 * The binary's path, or why there is none. From sources or a build, builds it
 * when it can (as whoever may write dist/). `root` is Kiln's package root
 * (tests give a stand-in's).
 */
export function findNestHelper(opts: { build?: boolean; root?: string } = {}): NestHelperFound {
  return findNativeHelper('kiln-nest', opts);
}

/** As findNestHelper, for any of the helpers. */
export function findNativeHelper(name: NativeHelperName, opts: { build?: boolean; root?: string } = {}): NestHelperFound {
  const root = opts.root ?? packageRoot(__dirname);
  if (isPackedArchive(root)) return packagedNestHelper(root, name);
  const sourcePath = join(root, sourceInPackage(name));
  const binaryPath = join(root, binaryInPackage(name));
  const source = existsSync(sourcePath) ? statSync(sourcePath) : undefined;
  const binary = existsSync(binaryPath) ? statSync(binaryPath) : undefined;
  if (binary && (!source || binary.mtimeMs >= source.mtimeMs)) return { path: binaryPath };
  if (!source) return { why: `its helper ${binaryPath} is missing` };
  if (opts.build === false) return { why: `its helper ${binaryPath} is ${binary ? 'older than its source' : 'not built'} (npm run build)` };
  const built = buildNestHelper(sourcePath, binaryPath);
  return built ? { why: built } : { path: binaryPath };
}

/**
 * In a packaged app: the copy unpacked beside the archive, never the one
 * Electron's fs shows inside it (the kernel cannot exec that), and never built
 * (a package has no source, and its folder is usually not writable).
 */
function packagedNestHelper(root: string, name: NativeHelperName): NestHelperFound {
  const binaryPath = join(unpackedRoot(root), binaryInPackage(name));
  try {
    accessSync(binaryPath, constants.X_OK);
    return { path: binaryPath };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'is not in this package (it was built without it unpacked)' : `cannot be run (${code})`;
    return { why: `its helper ${binaryPath} ${what}` };
  }
}

/** Compiles a helper's `source` into `binary` (atomically); undefined when done, else why not. */
export function buildNestHelper(source = NEST_SOURCE, binary = NEST_BINARY): string | undefined {
  const tmp = `${binary}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(binary), { recursive: true });
  } catch (err) {
    return `its helper cannot be built: ${(err as Error).message}`;
  }
  // Static where the C library allows: no dynamic loader per action (about 1 ms of CPU less here, README).
  for (const flags of [['-static'], []]) {
    const r = spawnSync('cc', ['-O2', ...flags, '-o', tmp, source], { encoding: 'utf8', timeout: 60_000 });
    if (r.error) return `its helper cannot be built: no C compiler (cc: ${r.error.message})`;
    if (r.status === 0) {
      renameSync(tmp, binary);
      return undefined;
    }
    rmSync(tmp, { force: true });
    if (flags.length === 0) return `its helper did not compile: ${(r.stderr || '').trim().split('\n')[0]}`;
  }
  return 'its helper did not compile';
}
