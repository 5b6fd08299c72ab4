// Builds renderer/dist when it is missing or older than its sources. Test files
// run in parallel, so a lock directory (mkdir is atomic) keeps builds from racing.
import { execFile } from 'node:child_process';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const ROOT = resolve(__dirname, '../..');
const RENDERER = join(ROOT, 'renderer');
const LOCK = join(RENDERER, '.build-lock');

async function newestMtime(path: string): Promise<number> {
  const s = await stat(path);
  if (!s.isDirectory()) return s.mtimeMs;
  let newest = 0;
  for (const e of await readdir(path)) newest = Math.max(newest, await newestMtime(join(path, e)));
  return newest;
}

async function isStale(): Promise<boolean> {
  const built = await stat(join(RENDERER, 'dist/index.html')).then((s) => s.mtimeMs, () => 0);
  const sources = Math.max(
    await newestMtime(join(RENDERER, 'src')),
    await newestMtime(join(RENDERER, 'index.html')),
    await newestMtime(join(RENDERER, 'vite.config.ts')),
  );
  return built < sources;
}

export async function ensureRendererBuilt(): Promise<void> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      await mkdir(LOCK);
      break;
    } catch {
      if (Date.now() > deadline) await rm(LOCK, { recursive: true, force: true }); // a crashed run's lock
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    if (await isStale()) {
      await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'renderer/vite.config.ts', '--logLevel', 'warn'], {
        cwd: ROOT,
        timeout: 170_000,
      });
    }
  } finally {
    await rm(LOCK, { recursive: true, force: true });
  }
}
