// The per-action command line in a non-root slot (kiln-nest), read as rules.
import { describe, expect, it } from 'vitest';
import { nestArgs } from '../../engine/sandbox/nest-args';

describe('nestArgs', () => {
  it('covers each folder to hide, gives back only the exec root, and passes the argv untouched after --', () => {
    expect(
      nestArgs({ helper: '/opt/kiln/dist/native/kiln-nest', hide: ['/run/kiln', '/data/build'], execRoot: '/data/build/a1', argv: ['/bin/sh', '-c', 'echo --hide x'] }),
    ).toEqual(['/opt/kiln/dist/native/kiln-nest', '--hide', '/data/build', '--hide', '/run/kiln', '--keep', '/data/build/a1', '--', '/bin/sh', '-c', 'echo --hide x']);
  });

  it('covers a folder inside another hidden one with it (no mount on a covered path), once', () => {
    const args = nestArgs({ helper: 'n', hide: ['/home/u/kiln', '/home/u/kiln/.data/build', '/home/u/kiln'], execRoot: '/home/u/kiln/.data/build/x', argv: ['true'] });
    expect(args).toEqual(['n', '--hide', '/home/u/kiln', '--keep', '/home/u/kiln/.data/build/x', '--', 'true']);
  });

  it('limits the action\'s processes when given a number', () => {
    expect(nestArgs({ helper: 'n', hide: [], execRoot: '/b/x', processes: 8192, argv: ['true'] })).toEqual(['n', '--nproc', '8192', '--keep', '/b/x', '--', 'true']);
    expect(nestArgs({ helper: 'n', hide: [], execRoot: '/b/x', argv: ['true'] })).not.toContain('--nproc');
  });

  it('has kiln-nest watch the action\'s memory when given a limit in bytes', () => {
    expect(nestArgs({ helper: 'n', hide: [], execRoot: '/b/x', processes: 10, memoryBytes: 64 * 1024 * 1024, argv: ['true'] })).toEqual(['n', '--nproc', '10', '--memory', '67108864', '--keep', '/b/x', '--', 'true']);
    expect(nestArgs({ helper: 'n', hide: [], execRoot: '/b/x', argv: ['true'] })).not.toContain('--memory');
  });

  it('has kiln-nest join each of the action\'s cgroups (their cgroup.procs as the slot sees them)', () => {
    expect(nestArgs({ helper: 'n', hide: [], execRoot: '/b/x', cgroups: ['/run/kiln/cgroup/0/run-1/cgroup.procs', '/run/kiln/cgroup/1/run-1/cgroup.procs'], argv: ['true'] })).toEqual([
      'n', '--cgroup', '/run/kiln/cgroup/0/run-1/cgroup.procs', '--cgroup', '/run/kiln/cgroup/1/run-1/cgroup.procs', '--keep', '/b/x', '--', 'true',
    ]);
  });

  it('sets the nice value before the action for a polite run', () => {
    expect(nestArgs({ helper: 'n', hide: [], execRoot: '/b/x', nice: 19, argv: ['true'] }).slice(0, 3)).toEqual(['n', '--nice', '19']);
  });
});
