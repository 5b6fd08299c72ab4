// The command line of a slot's sandbox, read as rules: what the agent and its actions see, and with what.
import { describe, expect, it } from 'vitest';
import { AGENT_CAPABILITIES, pathInSlot, slotBwrapArgs, type SlotLayout } from '../../engine/sandbox/slot-bwrap-args';

const layout: SlotLayout = {
  host: { system: [{ path: '/usr', kind: 'dir' }, { path: '/bin', kind: 'symlink', target: 'usr/bin' }], hidden: ['/usr/local/kiln-data', '/opt/kiln/data'], masked: ['/etc/shadow'] },
  buildRoot: '/var/tmp/kiln-build-0-abc',
  logDir: '/root/.local/share/kiln/logs',
  cgroupParents: ['/sys/fs/cgroup/memory/kiln/1-1', '/sys/fs/cgroup/pids/kiln/1-1'],
  codeDirs: ['/usr/bin', '/opt/kiln'],
  agent: { argv: ['/usr/bin/node', '/opt/kiln/dist/engine/worker/launcher.js'], cwd: '/opt/kiln', env: { PATH: '/usr/bin:/bin', KILN_LAUNCHER_SLOT: '1' } },
};

/** Each option with its arguments, as "--bind a b". */
function options(args: string[]): string[] {
  const out: string[] = [];
  for (const a of args.slice(0, args.indexOf('--'))) {
    if (a.startsWith('--')) out.push(a);
    else out[out.length - 1] += ` ${a}`;
  }
  return out;
}

describe('slotBwrapArgs', () => {
  const opts = options(slotBwrapArgs(layout));

  it('binds the system and Kiln\'s code read-only, covering the data folder inside them', () => {
    expect(opts).toContain('--ro-bind /usr /usr');
    expect(opts).toContain('--ro-bind /opt/kiln /opt/kiln');
    expect(opts).not.toContain('--ro-bind /usr/bin /usr/bin'); // already inside /usr
    expect(opts).toContain('--tmpfs /usr/local/kiln-data');
    expect(opts).toContain('--tmpfs /opt/kiln/data');
    expect(opts).toContain('--ro-bind /dev/null /etc/shadow');
  });

  it('binds the build folder writable at its own path, and the logs and cgroups only in the agent\'s closed folder', () => {
    expect(opts).toContain('--bind /var/tmp/kiln-build-0-abc /var/tmp/kiln-build-0-abc');
    expect(opts.indexOf('--perms 0700')).toBe(opts.indexOf('--dir /run/kiln') - 1);
    expect(opts).toContain('--bind /root/.local/share/kiln/logs /run/kiln/logs');
    expect(opts).toContain('--bind /sys/fs/cgroup/memory/kiln/1-1 /run/kiln/cgroup/0');
    expect(opts).toContain('--bind /sys/fs/cgroup/pids/kiln/1-1 /run/kiln/cgroup/1');
    expect(opts.filter((o) => o.startsWith('--bind '))).toHaveLength(4);
  });

  it('makes the folders above the build folder passable (0755), as on the host, before anything else', () => {
    expect(opts.slice(0, 4)).toEqual(['--perms 0755', '--dir /var', '--perms 0755', '--dir /var/tmp']);
  });

  it('binds Kiln\'s code that sits in /tmp (an AppImage) after the slot\'s own /tmp, which would cover it', () => {
    const appImage = options(slotBwrapArgs({ ...layout, host: { ...layout.host, hidden: ['/tmp/.mount_K/data'] }, codeDirs: ['/tmp/.mount_K', '/tmp/.mount_K/resources/app.asar', '/opt/kiln'] }));
    const tmp = appImage.indexOf('--tmpfs /tmp');
    expect(appImage.indexOf('--ro-bind /tmp/.mount_K /tmp/.mount_K')).toBeGreaterThan(tmp);
    expect(appImage.indexOf('--tmpfs /tmp/.mount_K/data')).toBeGreaterThan(appImage.indexOf('--ro-bind /tmp/.mount_K /tmp/.mount_K'));
    expect(appImage).not.toContain('--ro-bind /tmp/.mount_K/resources/app.asar /tmp/.mount_K/resources/app.asar'); // inside the other
    expect(appImage.indexOf('--ro-bind /opt/kiln /opt/kiln')).toBeLessThan(tmp);
  });

  it('gives /tmp and /dev/shm to all, as a host does', () => {
    expect(opts[opts.indexOf('--tmpfs /tmp') - 1]).toBe('--perms 1777');
    expect(opts[opts.indexOf('--tmpfs /dev/shm') - 1]).toBe('--perms 1777');
  });

  it('keeps the network off, bwrap\'s init as PID 1, and only the capabilities the agent needs', () => {
    expect(opts).toEqual(expect.arrayContaining(['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--die-with-parent', '--clearenv']));
    expect(opts).not.toContain('--as-pid-1');
    expect(opts).not.toContain('--share-net');
    const caps = opts.filter((o) => o.startsWith('--cap-'));
    expect(caps).toEqual(['--cap-drop ALL', ...AGENT_CAPABILITIES.map((c) => `--cap-add ${c}`)]);
    expect(AGENT_CAPABILITIES).not.toContain('CAP_SYS_ADMIN');
  });

  it('starts the agent with its own environment only, then its command line', () => {
    const args = slotBwrapArgs(layout);
    expect(opts).toContain('--setenv KILN_LAUNCHER_SLOT 1');
    expect(opts).toContain('--chdir /opt/kiln');
    expect(args.slice(args.indexOf('--') + 1)).toEqual(layout.agent.argv);
  });
});

describe('pathInSlot', () => {
  const binds = [{ host: '/data/logs', inside: '/run/kiln/logs' }];
  it('maps a path inside a bound folder, and nothing else', () => {
    expect(pathInSlot('/data/logs/a.out', binds)).toBe('/run/kiln/logs/a.out');
    expect(pathInSlot('/data/logs', binds)).toBeUndefined();
    expect(pathInSlot('/data/logs2/a.out', binds)).toBeUndefined();
  });
});

describe('slotBwrapArgs, unprivileged (Kiln not root)', () => {
  const args = slotBwrapArgs({ ...layout, cgroupParents: [], unprivileged: true });
  const opts = options(args);

  it('makes a user namespace of its own and gives the agent no capability to add', () => {
    expect(opts).toContain('--unshare-user');
    expect(opts.filter((o) => o.startsWith('--cap-'))).toEqual([]);
  });

  it('keeps the rest of the slot: PID, IPC, UTS and network namespaces, no cgroup folders, the agent last', () => {
    for (const o of ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net']) expect(opts).toContain(o);
    expect(opts.some((o) => o.includes('/run/kiln/cgroup'))).toBe(false);
    expect(args.slice(args.indexOf('--') + 1)).toEqual(layout.agent.argv);
  });
});
