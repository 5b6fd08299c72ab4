// Where kiln-nest (native/kiln-nest.c, see nest-args.ts) is, building it from
// its source with the host's C compiler when it is missing or older than the
// source: `npm run build` does it, and a Kiln run from sources does it at
// start. Without it, a non-root Kiln gives each action a bubblewrap of its own.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { packageRoot } from '../util/package-root';


export const NEST_SOURCE = join(packageRoot(__dirname), 'engine', 'sandbox', 'native', 'kiln-nest.c');
export const NEST_BINARY = join(packageRoot(__dirname), 'dist', 'native', 'kiln-nest');

/** The binary's path, or why there is none. Builds it when it can (as whoever may write dist/). */
export function findNestHelper(opts: { build?: boolean } = {}): { path: string; why?: undefined } | { path?: undefined; why: string } {
  const source = existsSync(NEST_SOURCE) ? statSync(NEST_SOURCE) : undefined;
  const binary = existsSync(NEST_BINARY) ? statSync(NEST_BINARY) : undefined;
  if (binary && (!source || binary.mtimeMs >= source.mtimeMs)) return { path: NEST_BINARY };
  if (!source) return { why: `its helper ${NEST_BINARY} is missing` };
  if (opts.build === false) return { why: `its helper ${NEST_BINARY} is ${binary ? 'older than its source' : 'not built'} (npm run build)` };
  const built = buildNestHelper();
  return built ? { why: built } : { path: NEST_BINARY };
}

/** Compiles kiln-nest into NEST_BINARY (atomically); undefined when done, else why not. */
export function buildNestHelper(): string | undefined {
  const tmp = `${NEST_BINARY}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(NEST_BINARY), { recursive: true });
  } catch (err) {
    return `its helper cannot be built: ${(err as Error).message}`;
  }
  // Static where the C library allows: no dynamic loader per action (about 1 ms of CPU less here, README).
  for (const flags of [['-static'], []]) {
    const r = spawnSync('cc', ['-O2', ...flags, '-o', tmp, NEST_SOURCE], { encoding: 'utf8', timeout: 60_000 });
    if (r.error) return `its helper cannot be built: no C compiler (cc: ${r.error.message})`;
    if (r.status === 0) {
      renameSync(tmp, NEST_BINARY);
      return undefined;
    }
    rmSync(tmp, { force: true });
    if (flags.length === 0) return `its helper did not compile: ${(r.stderr || '').trim().split('\n')[0]}`;
  }
  return 'its helper did not compile';
}
