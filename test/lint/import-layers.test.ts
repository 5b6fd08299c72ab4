// The import-direction check (`npm run lint`) is itself tested: a copy of the
// engine with back-edges added must fail it, naming the importing and the
// imported file of each, and must report nothing else (so the real engine,
// which the copy is, passes).
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = resolve(__dirname, '../..');
const depcruise = join(repo, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

let dir: string;

interface LintRun {
  code: number;
  output: string;
}

function lint(cwd: string): Promise<LintRun> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [depcruise, '--config', '.dependency-cruiser.cjs', '--output-type', 'err-long', 'engine'],
      { cwd, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => done({ code: err ? Number((err as NodeJS.ErrnoException & { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
    );
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-lint-'));
  // The generated protobuf code is not needed to see imports; everything else is the engine as it is.
  await cp(join(repo, 'engine'), join(dir, 'engine'), { recursive: true, filter: (src) => !src.startsWith(join(repo, 'engine', 'gen')) });
  for (const f of ['.dependency-cruiser.cjs', 'tsconfig.json', 'package.json']) await cp(join(repo, f), join(dir, f));
  await mkdir(join(dir, 'electron'));
  await writeFile(join(dir, 'electron', 'tray.ts'), 'export const tray = 1;\n');
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('npm run lint (import layers)', () => {
  it('fails a back-edge, an import of the desktop shell and a folder missing from the table, naming both files of each', async () => {
    // The check the issue describes: the store importing the HTTP server.
    const storeFile = join(dir, 'engine', 'store', 'memory-store.ts');
    await appendFile(storeFile, "\nimport '../http/server';\n");
    // The shared vocabulary reaching up into a layer that uses it.
    await appendFile(join(dir, 'engine', 'common', 'action-vocabulary.ts'), "\nimport type { EventBus } from '../events/event-bus';\n");
    // The engine importing the Electron shell.
    await appendFile(join(dir, 'engine', 'worker', 'launcher.ts'), "\nimport '../../electron/tray';\n");
    // A new folder nobody gave a row.
    await mkdir(join(dir, 'engine', 'gadgets'));
    await writeFile(join(dir, 'engine', 'gadgets', 'gadget.ts'), "import { systemClock } from '../clock';\nexport const now = () => systemClock.now();\n");
    expect(await readFile(storeFile, 'utf8')).toContain("import '../http/server'");

    const run = await lint(dir);
    expect(run.code).not.toBe(0);
    expect(run.output).toContain('store-may-import: engine/store/memory-store.ts → engine/http/server.ts');
    expect(run.output).toMatch(/engine\/store\/ may import only common, util, clock, digest, proto, grpc,\s+events/);
    expect(run.output).toContain('common-may-import: engine/common/action-vocabulary.ts → engine/events/event-bus.ts');
    expect(run.output).toContain('engine-not-to-electron-or-renderer: engine/worker/launcher.ts → electron/tray.ts');
    expect(run.output).toContain('engine-part-not-in-table: engine/gadgets/gadget.ts → engine/clock.ts');
    // Those four and nothing else: the engine as committed has no violation.
    expect(run.output).toMatch(/x 4 dependency violations \(4 errors, 0 warnings\)/);
  }, 180_000);
});
