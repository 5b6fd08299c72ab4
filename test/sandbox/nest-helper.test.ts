// kiln-nest itself (engine/sandbox/native/kiln-nest.c), built as `npm run build` builds it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findNestHelper } from '../../engine/sandbox/nest-helper';
import { agentWorkingFolder } from '../../engine/sandbox/slot-sandboxes';
import { packageRoot } from '../../engine/util/package-root';

const nest = process.platform === 'linux' ? findNestHelper() : { why: 'kiln-nest is Linux only' };
const why = nest.path ? '' : ` (skipped: ${nest.why})`;

describe.skipIf(!nest.path)(`kiln-nest${why}`, () => {
  it('refuses more folders to hide than it can cover, rather than leave one in sight', () => {
    const hide = Array.from({ length: 17 }, (_, i) => ['--hide', `/nonexistent-kiln/${i}`]).flat();
    const r = spawnSync(nest.path!, [...hide, '--keep', '/nonexistent-kiln/x', '--', '/bin/true'], { encoding: 'utf8' });
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/more than 16 --hide folders/);
  });

  it('refuses a call without the exec root to keep', () => {
    const r = spawnSync(nest.path!, ['--hide', '/nonexistent-kiln', '--', '/bin/true'], { encoding: 'utf8' });
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/usage: kiln-nest/);
  });
});

// A packaged app as Electron's fs shows it: app.asar reads as a folder (a stand-in folder here)
// that lists dist/native/kiln-nest, while only the copy in app.asar.unpacked can be exec'd.
describe('kiln-nest in a packaged app (a stand-in app.asar layout)', () => {
  let resources: string;
  beforeEach(() => {
    resources = mkdtempSync(join(tmpdir(), 'kiln-packaged-'));
    const asar = join(resources, 'app.asar');
    mkdirSync(join(asar, 'dist', 'native'), { recursive: true });
    mkdirSync(join(asar, 'dist', 'engine', 'sandbox'), { recursive: true });
    writeFileSync(join(asar, 'package.json'), '{"name":"kiln"}');
    writeFileSync(join(asar, 'dist', 'native', 'kiln-nest'), 'listed in the archive, not runnable', { mode: 0o755 });
  });
  afterEach(() => rmSync(resources, { recursive: true, force: true }));

  it('finds the package root at app.asar and takes the unpacked copy beside it', () => {
    const unpacked = join(resources, 'app.asar.unpacked', 'dist', 'native', 'kiln-nest');
    mkdirSync(dirname(unpacked), { recursive: true });
    writeFileSync(unpacked, '#!/bin/sh\n', { mode: 0o755 });
    const root = packageRoot(join(resources, 'app.asar', 'dist', 'engine', 'sandbox'));
    expect(root).toBe(join(resources, 'app.asar'));
    expect(findNestHelper({ root })).toEqual({ path: unpacked });
  });

  it('says the package lacks it, and never tries to compile it there', () => {
    const found = findNestHelper({ root: join(resources, 'app.asar') });
    expect(found).toEqual({ why: `its helper ${join(resources, 'app.asar.unpacked', 'dist', 'native', 'kiln-nest')} is not in this package (it was built without it unpacked)` });
    expect(existsSync(join(resources, 'app.asar.unpacked'))).toBe(false);
    expect(readdirSync(join(resources, 'app.asar', 'dist', 'native'))).toEqual(['kiln-nest']);
  });

  it('says so when the unpacked copy lost its exec bit', () => {
    const unpacked = join(resources, 'app.asar.unpacked', 'dist', 'native', 'kiln-nest');
    mkdirSync(dirname(unpacked), { recursive: true });
    writeFileSync(unpacked, '#!/bin/sh\n', { mode: 0o644 });
    // Root passes X_OK checks only where some exec bit is set, so this holds as root too.
    expect(findNestHelper({ root: join(resources, 'app.asar') }).why).toMatch(/kiln-nest cannot be run \(EACCES\)$/);
  });

  it("gives a slot's agent the folder holding app.asar to work in, not the archive", () => {
    expect(agentWorkingFolder(join(resources, 'app.asar'))).toBe(resources);
    expect(agentWorkingFolder('/work/kiln')).toBe('/work/kiln');
  });
});
