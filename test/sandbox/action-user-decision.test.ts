// Who actions run as, decided from action-user and what Kiln is allowed to
// do: pure decisions over a fake passwd lookup and a chosen uid, so the
// not-root path is covered on a machine that runs the tests as root.
import { chmodSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../engine/config-load';
import { NOBODY, accountsInRange, closedAncestor, decideActionUser, lookupPasswd } from '../../engine/sandbox/action-user';
import { DEFAULT_UID_SPAN } from '../../engine/sandbox/uid-claims';

const accounts: Record<string, { uid: number; gid: number }> = { builder: { uid: 1500, gid: 1600 }, toor: { uid: 0, gid: 0 } };
const lookup = (name: string) => accounts[name];

describe('decideActionUser', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'kiln-action-user-'));
  // mkdtemp makes it 0700: opened so only the folders each test closes are closed.
  chmodSync(scratch, 0o755);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  const none = () => [];

  it('as root, auto gives each action a uid of its own from action-uids (a block of a default span when unset)', () => {
    const auto = decideActionUser('auto', { uid: 0, lookup, accountsIn: none });
    expect(auto.uids).toBe('default');
    expect(auto.user?.label).toBe('a uid of its own per action (a block of 256 in 2000000000-2001048575)');
    // The checks at start (bubblewrap's trial) run as an unprivileged stand-in no Kiln ever sweeps.
    expect(auto.user).toMatchObject({ uid: NOBODY.uid, gid: NOBODY.gid });
    expect(decideActionUser('auto', { uid: 0, lookup, accountsIn: none, uids: { first: 3000, last: 3009 } }).uids).toEqual({ first: 3000, last: 3009 });
    // A named user is one fixed user for every action.
    expect(decideActionUser('builder', { uid: 0, lookup }).uids).toBeUndefined();
  });

  it('refuses a range that holds a local account or group', () => {
    const passwd = join(scratch, 'passwd-range');
    const group = join(scratch, 'group-range');
    writeFileSync(passwd, 'root:x:0:0::/root:/bin/sh\nalice:x:3005:3005::/home/alice:/bin/sh\n');
    writeFileSync(group, 'root:x:0:\nbuilders:x:3100:\n');
    const files = { passwd, group };
    expect(accountsInRange({ first: 3000, last: 3009 }, files)).toEqual(['user alice (3005)']);
    expect(accountsInRange({ first: 3100, last: 3100 }, files)).toEqual(['group builders (3100)']);
    expect(accountsInRange({ first: 4000, last: 4999 }, files)).toEqual([]);
    const accountsIn = (r: { first: number; last: number }) => accountsInRange(r, files);
    expect(() => decideActionUser('auto', { uid: 0, lookup, accountsIn, uids: { first: 3000, last: 3009 } })).toThrow(/action-uids: 3000-3009 holds local user alice \(3005\).*--action-uids/);
    // This host's own accounts are not in the default range.
    expect(accountsInRange(DEFAULT_UID_SPAN)).toEqual([]);
  });

  it('reads action-uids as FIRST-LAST and refuses root, -1 and reversed ranges', () => {
    const load = (v: string) => loadConfig({ flags: { 'action-uids': v }, savedSettings: false }).actionUids;
    expect(load('2000-2063')).toEqual({ first: 2000, last: 2063 });
    for (const bad of ['0-10', '10-5', '5', '1-4294967295', 'a-b']) expect(() => load(bad)).toThrow(/not a uid range/);
  });

  it('as root, takes a named user or uid[:gid], and refuses root itself and unknown names', () => {
    expect(decideActionUser('builder', { uid: 0, lookup }).user).toMatchObject({ uid: 1500, gid: 1600 });
    expect(decideActionUser('2000:3000', { uid: 0, lookup }).user).toMatchObject({ uid: 2000, gid: 3000 });
    expect(decideActionUser('2000', { uid: 0, lookup }).user).toMatchObject({ uid: 2000, gid: 2000 });
    expect(() => decideActionUser('0', { uid: 0, lookup })).toThrow(ConfigError);
    expect(() => decideActionUser('toor', { uid: 0, lookup })).toThrow(/is root/);
    expect(() => decideActionUser('ghost', { uid: 0, lookup })).toThrow(/no user named ghost/);
  });

  it('not as root, runs actions as Kiln\'s own user and says what protects the inputs; a named user is a config error', () => {
    const d = decideActionUser('auto', { uid: 1000, lookup });
    expect(d.user).toBeUndefined();
    expect(d.reason).toMatch(/not root.*read-only.*dropped from the CAS/);
    expect(() => decideActionUser('builder', { uid: 1000, lookup })).toThrow(/needs Kiln to run as root/);
    expect(decideActionUser('none', { uid: 0, lookup }).user).toBeUndefined();
  });

  it('falls back to Kiln\'s user (auto) or stops (a named user) when a folder above the data folder is closed to the action user', () => {
    const closed = join(scratch, 'private');
    mkdirSync(join(closed, 'inner'), { recursive: true, mode: 0o700 });
    const dataDir = join(closed, 'inner', 'kiln');
    expect(closedAncestor(dataDir, NOBODY)).toBe(join(closed, 'inner'));
    const auto = decideActionUser('auto', { uid: 0, lookup, accountsIn: none, dataDir });
    expect(auto.user).toBeUndefined();
    expect(auto.reason).toContain('--data-dir');
    expect(() => decideActionUser('builder', { uid: 0, lookup, dataDir })).toThrow(/closed to builder/);
    // A folder open to others (the test's temp folder) is fine, even before the data folder exists.
    expect(decideActionUser('auto', { uid: 0, lookup, accountsIn: none, dataDir: join(scratch, 'open', 'kiln') }).user).toBeDefined();
  });

  it('reads users from a passwd file', () => {
    const passwd = join(scratch, 'passwd');
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\nkiln-action:x:990:991::/nonexistent:/usr/sbin/nologin\n');
    expect(lookupPasswd('kiln-action', passwd)).toEqual({ uid: 990, gid: 991 });
    expect(lookupPasswd('nobody', passwd)).toBeUndefined();
  });
});

describe('action-user in the configuration', () => {
  it('accepts auto, none, names and uid[:gid], and explains anything else', () => {
    for (const value of ['auto', 'none', 'nobody', '65534', '65534:65534']) {
      expect(loadConfig({ flags: { 'action-user': value } }).actionUser).toBe(value);
    }
    expect(() => loadConfig({ flags: { 'action-user': 'no body' } })).toThrow(/not an action user/);
  });
});
