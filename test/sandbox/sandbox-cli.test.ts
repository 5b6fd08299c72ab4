// `kiln serve --sandbox on` where bubblewrap cannot be found: one line, exit code 2,
// nothing served. The real CLI in a child process whose PATH has no bwrap.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..', '..');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('kiln serve --sandbox on without bubblewrap', () => {
  it('stops with one actionable line and exit code 2', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kiln-sandbox-cli-'));
    dirs.push(dataDir);
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'engine', 'cli.ts'), 'serve', '--sandbox', 'on', '--port', '0', '--http-port', '0', '--data-dir', dataDir], {
      cwd: ROOT,
      env: { ...process.env, PATH: join(dataDir, 'no-bin') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b) => (stdout += b));
    child.stderr!.on('data', (b) => (stderr += b));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toEqual([
      'kiln serve: sandbox: on, but bubblewrap (bwrap) is not installed; install it (Debian/Ubuntu: apt-get install bubblewrap); or start with --sandbox off',
    ]);
  }, 60_000);
});
