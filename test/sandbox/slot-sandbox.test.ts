// Sandboxes made ahead per slot (engine/sandbox/slot-sandboxes.ts), with real
// actions through Execute: the action runs inside its slot's long-lived
// sandbox (the agent is there, as pid 2 under bwrap's init), holds no
// capability, cannot touch the agent, and nothing one action leaves in the
// slot reaches the next action in the same slot. One slot (concurrency 1), so
// both actions of a pair are known to share it. Needs root and bubblewrap.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';
import { SPAWN_BINARY } from '../../engine/sandbox/nest-helper';
import { packageRoot } from '../../engine/util/package-root';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { runScript, type ActionSpec } from '../execution/harness';

const probe = probeBubblewrap({ dataDir: '/nonexistent' });
const isRoot = process.getuid?.() === 0;
const skip = !probe.available ? ` (skipped: ${probe.reason})` : !isRoot ? ' (skipped: slot sandboxes need Kiln to run as root)' : '';

describe.skipIf(skip !== '')(`a sandbox per slot${skip}`, () => {
  let t: TestEngine;
  let seq = 0;

  beforeAll(async () => {
    t = await startTestEngine({ config: { sandbox: 'on', actionUser: 'auto', concurrency: 1, actionProcesses: 64 } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const run = (script: string, over: Partial<ActionSpec> = {}) => runScript(t.clients, script, `slot-${++seq}`, over);

  /** The slot's agent as the action sees it: pid 2's name and start time (the same slot's agent keeps both). */
  const AGENT = 'echo "agent $(cat /proc/2/comm) $(cut -d" " -f22 /proc/2/stat)"';

  it('says in /api/status that actions run in sandboxes made ahead per slot', async () => {
    const res = await fetch(`${t.engine.httpUrl}api/status`, { headers: { authorization: `Bearer ${t.engine.httpToken}` } });
    const status = (await res.json()) as { sandbox?: { reason: string } };
    expect(status.sandbox?.reason).toMatch(/each action runs in a sandbox made ahead for its slot/);
  });

  it('has run a warm-up through the slot\'s agent before the first action, so that action does not pay the agent\'s first spawn', async () => {
    // In the slot's PID namespace bwrap's init is 1 and the agent 2; the agent's
    // threads (and, from TypeScript sources, tsx's esbuild) take the next pids,
    // and live on. The first process the agent spawns takes the pid after
    // those: the first action is not it, so a pid below its own is free (the
    // warm-up's, which has exited).
    const first = await run('p=3; while [ "$p" -lt $$ ] && [ -e /proc/$p ]; do p=$((p + 1)); done; echo "$p $$"');
    expect(first, first.stderr).toMatchObject({ code: 0, exitCode: 0 });
    const [firstFree, own] = first.stdout.trim().split(' ').map(Number);
    expect(firstFree, first.stdout).toBeLessThan(own);
  });

  it('runs actions in the slot\'s long-lived sandbox, under bwrap\'s init and beside the agent', async () => {
    const a = await run(`${AGENT}; cat /proc/1/comm`);
    const b = await run(`${AGENT}; cat /proc/1/comm`);
    expect(a.stdout).toMatch(/^agent node \d+\nbwrap\n$/);
    // The same agent, started once: no sandbox was made for the second action.
    expect(b.stdout).toBe(a.stdout);
  });

  it('gives the action no capability back and no way to the agent', async () => {
    const r = await run(
      [
        "grep -E '^(CapPrm|CapEff|CapAmb|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '",
        'kill -STOP 2 2>/dev/null && echo SIGNALLED agent',
        // PTRACE_ATTACH (16) to the agent.
        "python3 -c 'import ctypes; c = ctypes.CDLL(None, use_errno=True); print(\"PTRACED agent\" if c.ptrace(16, 2, 0, 0) == 0 else \"ptrace refused\")'",
        'su -c true root </dev/null >/dev/null 2>&1 && echo BECAME root',
        'cat /proc/2/environ >/dev/null 2>&1 && echo READ agent environ',
        'ls /run/kiln >/dev/null 2>&1 && echo LISTED agent folder',
        'id -u',
      ].join('; '),
    );
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 4)).toEqual(['CapPrm: 0000000000000000', 'CapEff: 0000000000000000', 'CapAmb: 0000000000000000', 'NoNewPrivs: 1']);
    expect(lines.slice(4)).toEqual(['ptrace refused', expect.stringMatching(/^\d+$/)]);
    expect(Number(lines[5])).toBeGreaterThan(0);
    // And the slot still works afterwards.
    expect((await run('echo fine')).stdout).toBe('fine\n');
  });

  it('keeps the environment exactly the Command\'s, PWD included', async () => {
    const env = async (vars: Record<string, string>) => (await run('', { argv: ['/usr/bin/env'], env: vars })).stdout.trim().split('\n').sort();
    expect(await env({ FOO: 'bar', PWD: '/proc/self/cwd' })).toEqual(['FOO=bar', expect.stringMatching(/^KILN_TEST_SALT=/), 'PATH=/usr/bin:/bin', 'PWD=/proc/self/cwd']);
    expect(await env({ FOO: 'bar' })).toEqual(['FOO=bar', expect.stringMatching(/^KILN_TEST_SALT=/), 'PATH=/usr/bin:/bin']);
  });

  it('leaves the next action in the slot nothing of the last: processes, /tmp, /dev/shm, IPC, files beside the exec root', async () => {
    const a = await run(
      [
        AGENT,
        'setsid sleep 1000 3>&- </dev/null >/dev/null 2>&1 &',
        '(trap "" TERM HUP; exec sleep 1001) </dev/null >/dev/null 2>&1 &',
        'echo left > /tmp/left-by-a && mkdir -p /tmp/dir-by-a && echo left > /tmp/dir-by-a/f && chmod 0700 /tmp/dir-by-a',
        'echo left > /dev/shm/left-by-a',
        'ipcmk -M 4096 >/dev/null && ipcmk -Q >/dev/null && echo made ipc',
        'echo planted > ../planted-by-a 2>/dev/null && echo WROTE beside',
        'echo planted > /planted-by-a 2>/dev/null && echo WROTE root',
        'kill -KILL 2 2>/dev/null && echo KILLED agent',
        // The agent's spawner (kiln-spawn) is in the slot too, out of the action's reach as the agent is.
        'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = kiln-spawn ] && { kill -KILL ${p#/proc/} 2>/dev/null && echo KILLED spawner; }; done',
        'sleep 0.3; ls /tmp /dev/shm | tr "\\n" " "; echo',
      ].join('\n'),
    );
    expect(a, a.stderr).toMatchObject({ code: 0, exitCode: 0 });
    expect(a.stdout).toMatch(/^agent node \d+\nmade ipc\n/);
    expect(a.stdout).not.toMatch(/WROTE|KILLED/);
    expect(a.stdout).toContain('left-by-a');
    const b = await run(
      [
        AGENT,
        // Every process in the slot's namespace but init (1), the agent (2), this shell and ls.
        'for p in /proc/[0-9]*; do n=${p#/proc/}; [ "$n" = 1 ] || [ "$n" = 2 ] || [ "$n" = $$ ] || [ "$n" = $BASHPID ] || echo "process $n $(cat $p/comm 2>/dev/null)"; done',
        'ls -A /tmp /dev/shm | grep -v ":$" | grep . | sed "s/^/file /"',
        'ipcs -m -q | grep -E "^0x" | sed "s/^/ipc /"',
        'ls ../planted-by-a 2>/dev/null && echo found beside',
        // Its own exec root by its absolute path (Bazel's test runner goes by those).
        'cd "$(pwd -P)" && touch "$(pwd -P)/by-absolute-path" || echo "exec root not reachable by its path"',
        'true',
      ].join('\n'),
    );
    const agentA = a.stdout.split('\n')[0];
    // The same slot (the same agent), and nothing of A's in it.
    expect(b.stdout.split('\n')[0]).toBe(agentA);
    // Kiln's code stays where it is bound, in /tmp when it runs from there (an AppImage, or a clone in /tmp).
    const codeInTmp = /^\/tmp\/([^/]+)\//.exec(`${packageRoot(__dirname)}/`)?.[1];
    // The one process of Kiln's besides the agent: the agent's spawner, the same one (it survived A's kill).
    const spawners = b.stdout.split('\n').filter((l) => /^process \d+ kiln-spawn$/.test(l));
    expect(spawners).toHaveLength(existsSync(SPAWN_BINARY) ? 1 : 0);
    expect(b.stdout.split('\n').slice(1).filter((l) => l && !/^process \d+ (cat|ls|kiln-spawn)$/.test(l) && l !== `file ${codeInTmp}`)).toEqual([]);
  });

  it('starts no launcher outside the slots while every action ran in one', async () => {
    expect(plainLauncherPids()).toEqual([]);
  });

  it('makes a slot anew when its sandbox dies; the action meanwhile takes a sandbox of its own', async () => {
    const before = await run(AGENT);
    const slots = slotBwrapPids();
    expect(slots).toHaveLength(1);
    process.kill(slots[0], 'SIGKILL');
    await waitFor(() => !alive(slots[0]));
    const meanwhile = await run('echo ran; cat /proc/1/comm');
    expect(meanwhile).toMatchObject({ code: 0, exitCode: 0 });
    expect(meanwhile.stdout).toMatch(/^ran\n/);
    // A new slot, with a new agent, serves the actions after.
    await waitFor(() => slotBwrapPids().length === 1);
    let after = await run(AGENT);
    for (let i = 0; i < 20 && !after.stdout.startsWith('agent node'); i++) after = await run(AGENT);
    expect(after.stdout).toMatch(/^agent node \d+\n$/);
    expect(after.stdout).not.toBe(before.stdout);
  });

  it('an action handed a slot whose sandbox died a moment before still runs, in a sandbox of its own', async () => {
    // No waiting for the engine to notice the death: the action may be sent to the dead agent, which
    // never reports it started. It must then take a bwrap of its own, not fail with INTERNAL.
    const inSlot = async () => {
      // Until an action runs in a slot (one is up, warmed and idle), or 20 tries.
      for (let i = 0; i < 20; i++) if ((await run(AGENT)).stdout.startsWith('agent node')) return true;
      return false;
    };
    for (let round = 0; round < 3; round++) {
      expect(await inSlot()).toBe(true);
      const [slot] = slotBwrapPids();
      process.kill(slot, 'SIGKILL');
      const r = await run('echo ran');
      expect(r, r.stderr).toMatchObject({ code: 0, exitCode: 0, stdout: 'ran\n' });
    }
    expect(await inSlot()).toBe(true);
  });

  it('an action with network=on still runs, in a sandbox of its own', async () => {
    const r = await run('cat /proc/1/comm', { platform: { network: 'on' } });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toBe('bwrap\n');
    // Its bwrap is started by the plain launcher, which the first run that needed one started (here or the test above).
    expect(plainLauncherPids()).toHaveLength(1);
  });

  // Where kiln-spawn could not be built (no C compiler), the agent forks each action itself. Last: its
  // engine's launchers are this process's children too, which the tests above count.
  describe('whose agent has no kiln-spawn', () => {
    let forking: TestEngine;

    beforeAll(async () => {
      forking = await startTestEngine({
        config: { sandbox: 'on', actionUser: 'auto', concurrency: 1, actionProcesses: 64 },
        sandboxHelpers: { spawnHelper: () => ({ why: 'its helper is missing (this test)' }) },
      });
    });
    afterAll(async () => {
      await forking?.stop();
    });

    const run = (script: string, over: Partial<ActionSpec> = {}) => runScript(forking.clients, script, `forking-slot-${++seq}`, over);

    it('runs actions in the slot, forked by the agent itself, with their codes, signals and own uid', async () => {
      const a = await run(`${AGENT}; cat /proc/1/comm; echo "parent $(cut -d" " -f4 /proc/$$/stat)"; id -u; exit 3`);
      expect(a, a.stderr).toMatchObject({ code: 0, exitCode: 3 });
      const [agent, init, parent, uid] = a.stdout.trim().split('\n');
      expect(agent).toMatch(/^agent node \d+$/);
      expect(init).toBe('bwrap');
      // The agent (pid 2 in the slot) is the action's parent: no spawner between them.
      expect(parent).toBe('parent 2');
      expect(Number(uid)).toBeGreaterThan(0);
      const killed = await run('kill -ABRT $$');
      expect(killed).toMatchObject({ code: 0, exitCode: 134 });
      const b = await run(AGENT);
      expect(b.stdout.trim()).toBe(agent);
    });

    it('leaves the next action no process of the last, and no spawner', async () => {
      const a = await run('setsid sleep 1000 3>&- </dev/null >/dev/null 2>&1 &\n(trap "" TERM HUP; exec sleep 1001) </dev/null >/dev/null 2>&1 &\ntrue');
      expect(a, a.stderr).toMatchObject({ code: 0, exitCode: 0 });
      const b = await run('for p in /proc/[0-9]*; do n=${p#/proc/}; [ "$n" = 1 ] || [ "$n" = 2 ] || [ "$n" = $$ ] || echo "process $n $(cat $p/comm 2>/dev/null)"; done; true');
      expect(b.stdout.split('\n').filter((l) => l && !/^process \d+ cat$/.test(l))).toEqual([]);
    });
  });
});

/** Launchers this test's engine (this process) started itself, not inside a slot's bwrap. */
function plainLauncherPids(): number[] {
  return childrenOfThisProcess().filter(({ cmdline }) => !cmdline.includes('KILN_LAUNCHER_SLOT') && /launcher\.(ts|js)\0/.test(cmdline)).map(({ pid }) => pid);
}

function childrenOfThisProcess(): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push({ pid: Number(name), cmdline: readFileSync(`/proc/${name}/cmdline`, 'utf8') });
    } catch {
      // Gone.
    }
  }
  return out;
}

/** The slots' bwrap processes this test's engine (this process) started. */
function slotBwrapPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (ppid === process.pid && cmdline.startsWith(probe.available ? probe.bwrap : 'bwrap') && cmdline.includes('KILN_LAUNCHER_SLOT')) out.push(Number(name));
    } catch {
      // Gone.
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitFor(ok: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
