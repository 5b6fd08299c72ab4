// The identities actions run as (engine/sandbox/action-identities.ts): the uid
// pool's hand-out, its batched check of released uids and the clean-up, over fakes, and, as root, the real sweep of a
// uid's leftover processes (uid-processes.ts), with uids below the default
// span, so a Kiln another test file starts meanwhile never sweeps them.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FixedIdentity, UidPool, type ActionIdentity } from '../../engine/sandbox/action-identities';
import { killProcessesIn, killProcessesOf, processesIn, processesOf } from '../../engine/sandbox/uid-processes';
import { DEFAULT_BLOCK_SIZE, DEFAULT_UID_SPAN, claimUids } from '../../engine/sandbox/uid-claims';

const isRoot = process.getuid?.() === 0;
const scratch = mkdtempSync(join(tmpdir(), 'kiln-identities-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('UidPool', () => {
  it('gives each running action its own uid (gid the same number), and reuses the least recently freed one last', async () => {
    const pool = new UidPool({ first: 5000, last: 5002 }, { killAll: async () => 0, uidsInUse: () => new Set(), owner: { uid: process.getuid!(), gid: process.getgid!() } });
    const a = await pool.acquire();
    const b = await pool.acquire();
    expect([a.uid, a.gid, b.uid, b.gid]).toEqual([5000, 5000, 5001, 5001]);
    await a.release(join(scratch, 'gone'));
    // 5002 was never used; 5000 was just freed, so it waits its turn.
    expect((await pool.acquire()).uid).toBe(5002);
    expect((await pool.acquire()).uid).toBe(5000);
  });

  it('makes an action wait while every uid is in use, and hands it the first one freed', async () => {
    const pool = new UidPool({ first: 6000, last: 6000 }, { killAll: async () => 0, uidsInUse: () => new Set(), owner: { uid: process.getuid!(), gid: process.getgid!() } });
    const first = await pool.acquire();
    let second: number | undefined;
    const waiting = pool.acquire().then((l) => (second = l.uid));
    await new Promise((r) => setTimeout(r, 20));
    expect(second).toBeUndefined();
    await first.release(join(scratch, 'gone'));
    await waiting;
    expect(second).toBe(6000);
  });

  it('hands a released uid out again only after its leftover processes are killed, and hands the old exec root back to Kiln at once', async () => {
    const killed: ActionIdentity[] = [];
    const owner = { uid: process.getuid!(), gid: process.getgid!() };
    const lines: string[] = [];
    const pool = new UidPool(
      { first: 7000, last: 7000 },
      { killAll: async (id) => (killed.push(id), 2), uidsInUse: () => new Set([7000]), checkDelayMs: 60_000, owner, log: (l) => lines.push(l) },
    );
    const execRoot = join(scratch, 'exec-root');
    mkdirSync(execRoot);
    if (isRoot) chownSync(execRoot, 7000, 7000);
    const lease = await pool.acquire();
    await lease.release(execRoot);
    expect(statSync(execRoot).uid).toBe(owner.uid);
    // Releasing twice frees it once.
    await lease.release(execRoot);
    expect((await pool.acquire()).uid).toBe(7000);
    expect(killed).toEqual([{ uid: 7000, gid: 7000 }]);
    expect(lines.join('\n')).toMatch(/2 process\(es\) of an action outlived it as uid 7000/);
    let again = false;
    void pool.acquire().then(() => (again = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(again).toBe(false);
  });

  it('checks every released uid with one look, and kills only what runs as a released uid', async () => {
    const running = new Set([8000, 8001, 8002]);
    const killed: number[] = [];
    const pool = new UidPool(
      { first: 8000, last: 8002 },
      { killAll: async (id) => (killed.push(id.uid), running.delete(id.uid), 1), uidsInUse: () => new Set(running), checkDelayMs: 60_000, owner: { uid: process.getuid!(), gid: process.getgid!() } },
    );
    const leases = [await pool.acquire(), await pool.acquire(), await pool.acquire()];
    expect(pool.checks).toBe(0);
    await leases[0].release(join(scratch, 'gone'));
    await leases[1].release(join(scratch, 'gone'));
    // 8002 is still held: its action's processes are its own business, not a leftover.
    const next = await pool.acquire();
    expect(next.uid).toBe(8000);
    expect(pool.checks).toBe(1);
    expect(killed.sort()).toEqual([8000, 8001]);
    // 8001 was checked by the same look.
    expect((await pool.acquire()).uid).toBe(8001);
    expect(pool.checks).toBe(1);
    expect(running.has(8002)).toBe(true);
  });

  it('checks released uids after a moment even when no action needs them', async () => {
    const looks: number[] = [];
    const pool = new UidPool(
      { first: 9000, last: 9001 },
      { killAll: async () => 0, uidsInUse: () => (looks.push(Date.now()), new Set()), checkDelayMs: 10, owner: { uid: process.getuid!(), gid: process.getgid!() } },
    );
    await (await pool.acquire()).release(join(scratch, 'gone'));
    await (await pool.acquire()).release(join(scratch, 'gone'));
    const end = Date.now() + 10_000;
    while (!looks.length && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    // Both released uids, one look.
    expect(looks.length).toBe(1);
    expect(pool.checks).toBe(1);
  });

  it('checks the uids released since the last check when it is closed, so leftovers do not outlive Kiln', async () => {
    const killed: number[] = [];
    const pool = new UidPool(
      { first: 9100, last: 9101 },
      { killAll: async (id) => (killed.push(id.uid), 1), uidsInUse: () => new Set([9100, 9101]), checkDelayMs: 60_000, owner: { uid: process.getuid!(), gid: process.getgid!() } },
    );
    const a = await pool.acquire();
    await (await pool.acquire()).release(join(scratch, 'gone'));
    expect(killed).toEqual([]);
    await pool.close();
    // 9101 was released; 9100 is still held by a running action and is not touched.
    expect(killed).toEqual([9101]);
    await a.release(join(scratch, 'gone'));
  });

  it('a fixed user is the same for every action', async () => {
    const fixed = new FixedIdentity({ uid: 65534, gid: 65534 });
    const [a, b] = await Promise.all([fixed.acquire(), fixed.acquire()]);
    expect([a.uid, b.uid]).toEqual([65534, 65534]);
  });
});

describe.skipIf(!isRoot)(`processes left as a uid${isRoot ? '' : ' (skipped: starting processes as another uid needs root)'}`, () => {
  it('are found and killed, setsid daemons included, and nothing else is', async () => {
    const uid = 1_990_000_250;
    chmodSync(scratch, 0o755);
    // One in its own session, as a daemon that left its action's group would be.
    const daemon = spawn('setsid', ['sleep', '300'], { uid, gid: uid, detached: true, stdio: 'ignore' });
    const other = spawn('sleep', ['300'], { stdio: 'ignore' });
    try {
      await waitFor(async () => processesOf(uid).length > 0);
      expect(await killProcessesOf({ uid, gid: uid })).toBeGreaterThan(0);
      await waitFor(async () => processesOf(uid).length === 0);
      expect(processesOf(uid)).toEqual([]);
      // Kiln's own processes are untouched.
      expect(other.exitCode).toBeNull();
      expect(() => process.kill(other.pid!, 0)).not.toThrow();
    } finally {
      daemon.kill('SIGKILL');
      other.kill('SIGKILL');
    }
  }, 30_000);
});

describe.skipIf(!isRoot)(`a uid handed out again${isRoot ? '' : ' (skipped: starting processes as another uid needs root)'}`, () => {
  it('has nothing left running as it from its last action, with the real look through /proc and the real kill', async () => {
    // Its own uid, apart from the fixed ones above: the same test file may run in another checkout meanwhile.
    const uid = 1_990_001_000 + (process.pid % 1000);
    const pool = new UidPool({ first: uid, last: uid }, { checkDelayMs: 60_000 });
    const lease = await pool.acquire();
    // What an action left behind: in a session of its own, out of its group.
    const leftover = spawn('setsid', ['sleep', '300'], { uid, gid: uid, detached: true, stdio: 'ignore' });
    // setsid forks and its first process exits: wait for that, so what is counted below is the sleep that stays.
    const forked = new Promise((resolve) => leftover.once('exit', resolve));
    try {
      await forked;
      await waitFor(async () => processesOf(uid).length > 0);
      await lease.release(join(scratch, 'gone'));
      // Released, not yet checked: it still runs (the check is batched) …
      expect(processesOf(uid).length).toBeGreaterThan(0);
      // … and is gone before the uid is anyone's again.
      const again = await pool.acquire();
      expect(again.uid).toBe(uid);
      expect(processesOf(uid)).toEqual([]);
      expect(pool.checks).toBe(1);
    } finally {
      leftover.kill('SIGKILL');
    }
  }, 30_000);
});

describe.skipIf(!isRoot)(`processes left in a claimed range${isRoot ? '' : ' (skipped: starting processes as another uid needs root)'}`, () => {
  it('are all killed at start, whichever uid of the range they run as, and nothing outside it is', async () => {
    const range = { first: 1_990_000_240, last: 1_990_000_243 };
    const inside = [240, 242].map((n) => spawn('sleep', ['300'], { uid: 1_990_000_000 + n, gid: 1_990_000_000 + n, stdio: 'ignore' }));
    const outside = spawn('sleep', ['300'], { uid: 1_990_000_244, gid: 1_990_000_244, stdio: 'ignore' });
    try {
      await waitFor(async () => processesIn(range).length === 2 && processesOf(1_990_000_244).length === 1);
      expect(await killProcessesIn(range)).toBe(2);
      await waitFor(async () => processesIn(range).length === 0);
      expect(processesOf(1_990_000_244)).toEqual([outside.pid]);
    } finally {
      for (const c of [...inside, outside]) c.kill('SIGKILL');
    }
  }, 30_000);
});

async function waitFor(ok: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('uid claims', () => {
  const dir = join(scratch, 'claims');

  it('gives two Kilns on one host different default blocks, and a configured range to one Kiln only', () => {
    const a = claimUids(undefined, '/srv/one/kiln', { dir, owner: process.getuid!() });
    const b = claimUids(undefined, '/srv/one/kiln', { dir, owner: process.getuid!() });
    try {
      expect(a.range.last - a.range.first + 1).toBe(DEFAULT_BLOCK_SIZE);
      expect(a.range.first).toBeGreaterThanOrEqual(DEFAULT_UID_SPAN.first);
      expect(b.range.first).not.toBe(a.range.first);
      const mine = claimUids({ first: 3000, last: 3063 }, '/srv/two/kiln', { dir, owner: process.getuid!() });
      expect(() => claimUids({ first: 3000, last: 3063 }, '/srv/three/kiln', { dir, owner: process.getuid!() })).toThrow(/action-uids: 3000-3063 is in use by another Kiln.*--action-uids/);
      mine.release();
      // Released: the next Kiln may have it.
      claimUids({ first: 3000, last: 3063 }, '/srv/three/kiln', { dir, owner: process.getuid!() }).release();
    } finally {
      a.release();
      b.release();
    }
    // The same data folder gets the same block again once it is free.
    const again = claimUids(undefined, '/srv/one/kiln', { dir, owner: process.getuid!() });
    expect(again.range).toEqual(a.range);
    again.release();
  });
});
