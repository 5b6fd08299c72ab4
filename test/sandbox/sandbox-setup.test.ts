// The sandbox decision at start: sandbox auto | on | off, LAN mode, and what the host allows.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../engine/config-load';
import { defaultConfig } from '../../engine/config';
import { setUpSandbox } from '../../engine/sandbox/sandbox-setup';
import { FakeRunner } from '../execution/fake-runner';

const works = () => ({ available: true as const, bwrap: '/usr/bin/bwrap', host: { system: [], hidden: [] } });
const missing = () => ({ available: false as const, reason: 'bubblewrap (bwrap) is not installed; install it (Debian/Ubuntu: apt-get install bubblewrap)' });
const noCgroups = () => ({ reason: 'no cgroup file system at /nowhere' });
const base = { dataDir: '/nonexistent-kiln', cgroups: noCgroups };

describe('setUpSandbox', () => {
  it('auto: on in LAN mode when bubblewrap works, wrapping the runner', () => {
    const inner = new FakeRunner();
    const s = setUpSandbox({ ...base, mode: 'auto', lanMode: true, probe: works });
    expect(s.status).toMatchObject({ enabled: true, mode: 'auto', runner: 'bubblewrap' });
    expect(s.status.limits).toMatch(/^none \(no cgroup file system/);
    const wrapped = s.wrap(inner);
    expect(wrapped).not.toBe(inner);
    expect(wrapped.capabilities()).toMatchObject({ name: 'bubblewrap', honours: { networkIsolation: true, memoryLimit: false } });
  });

  it('auto on the desk (loopback), not root: on where bubblewrap works, in unprivileged slots, else a bwrap per action saying why', () => {
    const inner = new FakeRunner();
    const dataDir = mkdtempSync(join(tmpdir(), 'kiln-setup-nonroot-'));
    try {
      // The build folder must not be under /tmp (a slot empties its /tmp): given one elsewhere, as the data folder's build/ is on a desk.
      const buildRoot = mkdtempSync(join('/var/tmp', 'kiln-setup-build-'));
      const slotted = setUpSandbox({ ...base, dataDir, buildRoot, mode: 'auto', lanMode: false, probe: works, isRoot: false, nestHelper: () => ({ path: '/opt/kiln/kiln-nest' }), slotTrial: () => undefined });
      rmSync(buildRoot, { recursive: true, force: true });
      expect(slotted.status.reason).toBe(
        "sandbox: auto, and bubblewrap works here; each action runs in a sandbox made ahead for its slot (Kiln is not root: an unprivileged one), in user, mount, PID and IPC namespaces of its own that show it only its exec root, as Kiln's user (an action with network=on gets a sandbox of its own)",
      );
      const noHelper = setUpSandbox({ ...base, dataDir, mode: 'auto', lanMode: false, probe: works, isRoot: false, nestHelper: () => ({ why: 'its helper /opt/kiln/kiln-nest is missing' }) });
      expect(noHelper.status.reason).toBe(
        'sandbox: auto, and bubblewrap works here; each action gets a sandbox of its own (none made ahead per slot: Kiln is not root, and its helper /opt/kiln/kiln-nest is missing), which costs more per action than one made ahead; sandbox: off trades the sandbox for that time',
      );
      expect(noHelper.wrap(inner)).not.toBe(inner);
      const refused = setUpSandbox({ ...base, dataDir, buildRoot: '/var/tmp', mode: 'auto', lanMode: false, probe: works, isRoot: false, nestHelper: () => ({ path: '/k' }), slotTrial: () => 'an action\'s namespaces could not be made inside it: kiln-nest: cannot make namespaces: Operation not permitted' });
      expect(refused.status.reason).toMatch(/a sandbox of its own \(none made ahead per slot: an action's namespaces could not be made inside it: kiln-nest: cannot make namespaces/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
    const asNobody = setUpSandbox({ ...base, mode: 'auto', lanMode: false, probe: works, isRoot: true, actionUser: { user: { uid: 65534, gid: 65534, label: 'nobody (65534:65534)' }, reason: 'Kiln is root' } });
    expect(asNobody.status.enabled).toBe(true);
    expect(asNobody.status.reason).toMatch(/none made ahead per slot: actions do not each run as a uid of their own \(action-user: auto, as root\)\), which costs more per action/);
  });

  it('not root, without cgroups: each action in a slot is started with the processes limit (kiln-nest --nproc), and the status says so', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kiln-setup-nproc-'));
    const buildRoot = mkdtempSync(join('/var/tmp', 'kiln-setup-build-'));
    const record = join(dataDir, 'bwrap.args');
    // A stand-in bwrap for the start-up trial: records each command line, and "starts" the agent.
    const bwrap = join(dataDir, 'bwrap');
    writeFileSync(bwrap, `#!/bin/sh\nprintf '%s\\n' "$@" >> '${record}'\necho '{"type":"ready"}'\n`, { mode: 0o755 });
    try {
      const s = setUpSandbox({
        ...base, dataDir, buildRoot, mode: 'auto', lanMode: false, isRoot: false, defaults: { pids: 512 },
        probe: () => ({ available: true as const, bwrap, host: { system: [], hidden: [] } }),
        nestHelper: () => ({ path: '/opt/kiln/kiln-nest' }),
        slotTrial: (slots) => slots.trial(),
      });
      expect(s.status.reason).toMatch(/each action runs in a sandbox made ahead for its slot \(Kiln is not root/);
      expect(s.status.limits).toBe("kiln-nest: at most 512 processes per action; memory watched every 20 ms (its processes' resident memory; over the limit, killed); no cpus limit (no cgroup file system at /nowhere)");
      const args = readFileSync(record, 'utf8').split('\n');
      const nest = args.indexOf('/opt/kiln/kiln-nest');
      expect(nest).toBeGreaterThan(0);
      expect(args.slice(nest + 1, nest + 3)).toEqual(['--nproc', '512']);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(buildRoot, { recursive: true, force: true });
    }
  });

  it('not root, with cgroups Kiln may write (fixed folders): slots all the same, the pids limit left to the cgroup', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kiln-setup-cg-'));
    const buildRoot = mkdtempSync(join('/var/tmp', 'kiln-setup-build-'));
    const record = join(dataDir, 'bwrap.args');
    const bwrap = join(dataDir, 'bwrap');
    writeFileSync(bwrap, `#!/bin/sh\nprintf '%s\\n' "$@" >> '${record}'\necho '{"type":"ready"}'\n`, { mode: 0o755 });
    const limiter = { name: 'cgroup v1', enforces: { memory: true, cpus: false, pids: true }, parentDirs: ['/sys/fs/cgroup/memory/desk/kiln/1-1'], create: async () => { throw new Error('no run here'); }, close: () => {} };
    try {
      const s = setUpSandbox({
        ...base, dataDir, buildRoot, mode: 'auto', lanMode: false, isRoot: false, cgroups: () => ({ limiter }),
        probe: () => ({ available: true as const, bwrap, host: { system: [], hidden: [] } }),
        nestHelper: () => ({ path: '/opt/kiln/kiln-nest' }),
        slotTrial: (slots) => slots.trial(),
      });
      expect(s.status.reason).toMatch(/each action runs in a sandbox made ahead for its slot \(Kiln is not root/);
      expect(s.status.limits).toBe('cgroup v1: memory, pids');
      const args = readFileSync(record, 'utf8').split('\n');
      expect(args).toContain('/opt/kiln/kiln-nest');
      expect(args).not.toContain('--nproc');
      // The cgroup folders are bound into the slot (under the agent's folder, which kiln-nest covers for the action).
      expect(args.join(' ')).toContain('--bind /sys/fs/cgroup/memory/desk/kiln/1-1 /run/kiln/cgroup/0');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(buildRoot, { recursive: true, force: true });
    }
  });

  it('auto on the desk without bubblewrap: off, saying what to install and who actions run as', () => {
    const inner = new FakeRunner();
    const s = setUpSandbox({ ...base, mode: 'auto', lanMode: false, probe: missing, isRoot: false });
    expect(s.status).toMatchObject({ enabled: false, mode: 'auto' });
    expect(s.status.reason).toBe(
      "sandbox: auto, but bubblewrap (bwrap) is not installed; install it (Debian/Ubuntu: apt-get install bubblewrap); actions run unsandboxed, as Kiln's user, and can read what it can",
    );
    expect(s.wrap(inner)).toBe(inner);
  });

  describe('auto on loopback, as root with a uid per action', () => {
    let dataDir: string;
    let buildRoot: string;
    beforeAll(() => {
      dataDir = mkdtempSync(join(tmpdir(), 'kiln-setup-data-'));
      // Not under /tmp: a slot empties its /tmp after each action, so exec roots there keep a bwrap per action.
      buildRoot = mkdtempSync(join(existsSync('/var/tmp') ? '/var/tmp' : '/nonexistent', 'kiln-setup-build-'));
    });
    afterAll(() => {
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(buildRoot, { recursive: true, force: true });
    });
    const perAction = { user: { uid: 65534, gid: 65534, label: 'a uid of its own per action' }, uids: 'default' as const, reason: 'Kiln is root' };

    it('is on where a slot\'s sandbox starts, and says why', () => {
      const s = setUpSandbox({ ...base, dataDir, buildRoot, mode: 'auto', lanMode: false, probe: works, isRoot: true, actionUser: perAction, slotTrial: () => undefined });
      expect(s.status).toMatchObject({ enabled: true, mode: 'auto', runner: 'bubblewrap' });
      expect(s.status.reason).toMatch(/^sandbox: auto, and bubblewrap works here; each action runs in a sandbox made ahead for its slot/);
    });

    it('keeps a bwrap per action, saying why, where a slot\'s sandbox does not start', () => {
      const s = setUpSandbox({ ...base, dataDir, buildRoot, mode: 'auto', lanMode: false, probe: works, isRoot: true, actionUser: perAction, slotTrial: () => 'its sandbox did not start: no' });
      expect(s.status.enabled).toBe(true);
      expect(s.status.reason).toBe('sandbox: auto, and bubblewrap works here; each action gets a sandbox of its own (none made ahead per slot: its sandbox did not start: no), which costs more per action than one made ahead; sandbox: off trades the sandbox for that time');
    });

    it('keeps a bwrap per action when the build folder is under /tmp, which a slot empties after each action', () => {
      const underTmp = mkdtempSync(join('/tmp', 'kiln-setup-build-'));
      try {
        const s = setUpSandbox({ ...base, dataDir, buildRoot: underTmp, mode: 'on', lanMode: false, probe: works, isRoot: true, actionUser: perAction, slotTrial: () => undefined });
        expect(s.status.reason).toMatch(/none made ahead per slot: the build folder \/tmp\/kiln-setup-build-\w+ is in \/tmp, which a slot's sandbox empties after each action/);
      } finally {
        rmSync(underTmp, { recursive: true, force: true });
      }
    });

    it('on keeps a bwrap per action where a slot\'s sandbox does not start, and says so', () => {
      const s = setUpSandbox({ ...base, dataDir, buildRoot, mode: 'on', lanMode: false, probe: works, isRoot: true, actionUser: perAction, slotTrial: () => 'its sandbox did not start: no' });
      expect(s.status.enabled).toBe(true);
      expect(s.status.reason).toBe('sandbox: on in the configuration; each action gets a sandbox of its own (none made ahead per slot: its sandbox did not start: no)');
    });
  });

  it('auto in LAN mode without bubblewrap: runs unsandboxed and says why', () => {
    const s = setUpSandbox({ ...base, mode: 'auto', lanMode: true, probe: missing });
    expect(s.status.enabled).toBe(false);
    expect(s.status.reason).toMatch(/LAN mode asks for the sandbox, but bubblewrap \(bwrap\) is not installed/);
  });

  it('on without bubblewrap: one ConfigError line (exit code 2) saying what to install or set', () => {
    expect(() => setUpSandbox({ ...base, mode: 'on', lanMode: false, probe: missing })).toThrow(ConfigError);
    expect(() => setUpSandbox({ ...base, mode: 'on', lanMode: false, probe: missing })).toThrow(
      /^sandbox: on, but bubblewrap \(bwrap\) is not installed; install it \(Debian\/Ubuntu: apt-get install bubblewrap\); or start with --sandbox off$/,
    );
  });

  it('off: never probes, never wraps', () => {
    const s = setUpSandbox({ ...base, mode: 'off', lanMode: true, probe: () => { throw new Error('must not probe'); } });
    expect(s.status).toMatchObject({ enabled: false, mode: 'off' });
  });
});

describe('the sandbox setting', () => {
  const cfg = { ...defaultConfig(), dataDir: '/nonexistent-kiln' };
  it('defaults to auto and takes auto, on, off from flags and files', () => {
    expect(loadConfig({ base: cfg, savedSettings: false }).sandbox).toBe('auto');
    expect(loadConfig({ base: cfg, flags: { sandbox: 'on' }, savedSettings: false }).sandbox).toBe('on');
    expect(loadConfig({ base: cfg, flags: { sandbox: 'OFF' }, savedSettings: false }).sandbox).toBe('off');
  });
  it('takes per-action limits: action-memory, action-cpus, action-processes', () => {
    const c = loadConfig({ base: cfg, flags: { 'action-memory': '2GiB', 'action-cpus': '1.5', 'action-processes': '512' }, savedSettings: false });
    expect(c).toMatchObject({ actionMemoryBytes: 2 * 1024 ** 3, actionCpus: 1.5, actionProcesses: 512 });
    const d = loadConfig({ base: cfg, savedSettings: false });
    expect([d.actionMemoryBytes, d.actionCpus, d.actionProcesses]).toEqual([undefined, undefined, 8192]);
    expect(() => loadConfig({ base: cfg, flags: { 'action-cpus': 'many' }, savedSettings: false })).toThrow(/^action-cpus: "many" is not a number of cores/);
    expect(() => loadConfig({ base: cfg, flags: { 'action-processes': '0' }, savedSettings: false })).toThrow(/^action-processes: "0" is not an integer from 1 to/);
  });

  it('refuses anything else in one line', () => {
    expect(() => loadConfig({ base: cfg, flags: { sandbox: 'maybe' }, savedSettings: false })).toThrow(
      /^sandbox: "maybe" is not a sandbox mode; use auto \(sandboxed wherever bubblewrap works\), on or off$/,
    );
  });
});
