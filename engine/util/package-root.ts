// Kiln's package folder, found from a file inside it: the same from engine/
// (sources), dist/engine/ (a build) and a packaged app's resources.
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** The nearest folder at or above `from` with a package.json; `from` itself if there is none. */
export function packageRoot(from = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return from;
  }
}

/**
 * Whether the package root is an Electron archive (resources/app.asar): Electron's
 * fs reads inside it as a folder, but the kernel sees one file, so nothing in it
 * can be exec'd nor entered as a working folder.
 */
export function isPackedArchive(root: string): boolean {
  return basename(root).endsWith('.asar');
}

/** Where electron-builder puts the files it unpacks from archive `root` (asarUnpack): `<root>.unpacked`, same layout. */
export function unpackedRoot(root: string): string {
  return `${root}.unpacked`;
}
