// Kiln's package folder, found from a file inside it: the same from engine/
// (sources), dist/engine/ (a build) and a packaged app's resources.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The nearest folder at or above `from` with a package.json; `from` itself if there is none. */
export function packageRoot(from = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return from;
  }
}
