// The sandbox's rules as bwrap arguments: read without running anything.
import { describe, expect, it } from 'vitest';
import { PRELUDE, PRELUDE_NAME, PRELUDE_SHELL, bwrapArgs, type HostLayout } from '../../engine/sandbox/bwrap-args';

const host: HostLayout = {
  system: [
    { path: '/usr', kind: 'dir' },
    { path: '/opt', kind: 'dir' },
    { path: '/bin', kind: 'symlink', target: 'usr/bin' },
  ],
  hidden: ['/opt/kiln-data', '/home/alice'],
};
const cmd = { execRoot: '/opt/kiln-data/build/run-1', workingDirectory: 'pkg', argv: ['gcc', '-c', 'a.c'], network: false };

/** The pairs/triples of options as they appear, for order-insensitive checks. */
const optionsOf = (args: string[]) => args.slice(0, args.indexOf('--')).join(' ');

describe('bwrapArgs', () => {
  it('binds the system read-only, recreates root symlinks and binds only the exec root writable', () => {
    const opts = optionsOf(bwrapArgs(host, cmd));
    expect(opts).toContain('--ro-bind /usr /usr');
    expect(opts).toContain('--ro-bind /opt /opt');
    expect(opts).toContain('--symlink usr/bin /bin');
    expect(opts).toContain(`--bind ${cmd.execRoot} ${cmd.execRoot}`);
    expect(opts.match(/--bind /g)).toHaveLength(1);
    expect(opts).toContain('--tmpfs /tmp');
    expect(opts).toContain('--dev /dev');
    expect(opts).toContain(`--chdir ${cmd.execRoot}/pkg`);
  });

  it('covers a hidden folder that sits inside a visible system folder, before the exec root is bound into it', () => {
    const args = bwrapArgs(host, cmd);
    const hide = args.indexOf('/opt/kiln-data');
    expect(args[hide - 1]).toBe('--tmpfs');
    expect(hide).toBeLessThan(args.indexOf('--bind'));
    // A home outside every system folder is simply never bound.
    expect(args).not.toContain('/home/alice');
  });

  it('binds the extra read-only folders (kiln-nest\'s), those in /tmp (an AppImage) after the sandbox\'s own /tmp', () => {
    const opts = optionsOf(bwrapArgs(host, { ...cmd, readOnly: ['/srv/kiln/native', '/tmp/.mount_K/native'] }));
    expect(opts).toContain('--ro-bind /srv/kiln/native /srv/kiln/native');
    expect(opts.indexOf('--ro-bind /srv/kiln/native')).toBeLessThan(opts.indexOf('--tmpfs /tmp'));
    expect(opts.indexOf('--ro-bind /tmp/.mount_K/native /tmp/.mount_K/native')).toBeGreaterThan(opts.indexOf('--tmpfs /tmp'));
  });

  it('masks root-only system files with an empty file', () => {
    expect(optionsOf(bwrapArgs({ ...host, masked: ['/etc/shadow'] }, cmd))).toContain('--ro-bind /dev/null /etc/shadow');
  });

  it('unshares PID, IPC, UTS and the network, drops every capability, and dies with its parent', () => {
    const opts = optionsOf(bwrapArgs(host, cmd)).split(' ');
    expect(opts).toEqual(expect.arrayContaining(['--unshare-pid', '--as-pid-1', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--die-with-parent']));
    // The action stays in the process group the launcher signals (pause, resume, TERM).
    expect(opts).not.toContain('--new-session');
    expect(optionsOf(bwrapArgs(host, cmd))).toContain('--cap-drop ALL');
    expect(optionsOf(bwrapArgs(host, { ...cmd, network: true }))).not.toContain('--unshare-net');
  });

  it('runs the argv through the prelude, removing the PWD bwrap sets, or restoring the Command\'s own', () => {
    const args = bwrapArgs(host, cmd);
    const prelude = ['--', PRELUDE_SHELL, '-c', PRELUDE, PRELUDE_NAME];
    expect(args.slice(args.indexOf('--'))).toEqual([...prelude, '0', '-', 'gcc', '-c', 'a.c']);
    const own = bwrapArgs(host, { ...cmd, pwd: '/proc/self/cwd', cgroupFds: 3 });
    expect(own.slice(own.indexOf('--'))).toEqual([...prelude, '3', '=/proc/self/cwd', 'gcc', '-c', 'a.c']);
  });
});
