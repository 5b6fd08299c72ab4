// kiln-nest itself (engine/sandbox/native/kiln-nest.c), built as `npm run build` builds it.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { findNestHelper } from '../../engine/sandbox/nest-helper';

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
