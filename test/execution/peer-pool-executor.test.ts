// Peer choice and retry of the peer pool, and how the placement executor
// combines it with the local executor, with fake executors throughout.
import { describe, expect, it } from 'vitest';
import { NoRemoteTargetError, PeerPoolExecutor, type PoolTarget } from '../../engine/execution/peer-pool-executor';
import { PlacementExecutor } from '../../engine/execution/placement-executor';
import type { PreparedAction } from '../../engine/execution/executor';
import { Status } from '../../engine/grpc/status';
import { reapi } from '../../engine/proto';
import { FakeExecutor } from './fake-executor';

const sink = { write: async () => {}, end: async () => {} };

function action(id: string, invocationId?: string, forwarded?: boolean): PreparedAction {
  return {
    id,
    instance: '',
    actionDigest: { fn: 'sha256', hash: 'a'.repeat(64), size: 1 },
    action: reapi.Action.create({}),
    command: reapi.Command.create({ arguments: ['true'] }),
    timeoutMs: 60_000,
    logs: { stdout: sink as never, stderr: sink as never },
    invocationId,
    forwarded,
  };
}

/** A peer with a fixed number of slots, counting what runs on it. */
function peer(name: string, slots: number): PoolTarget & { fake: FakeExecutor; slots: number } {
  const fake = new FakeExecutor();
  fake.autoFinishExitCode = 0;
  let active = 0;
  fake.run = ((run) => (a, s, h) => {
    active++;
    return run(a, s, h).finally(() => active--);
  })(fake.run.bind(fake));
  const t = { name, fake, slots, executor: fake, room: () => t.slots - active };
  return t;
}

/** An executor whose every run fails as a vanished peer does. */
function vanishing(name: string, slots = 4): PoolTarget & { attempts: number } {
  const t = {
    name,
    attempts: 0,
    room: () => slots,
    executor: {
      validateCommand() {},
      capacity: () => ({ ready: true }),
      close: async () => {},
      run: async () => {
        t.attempts++;
        throw Object.assign(new Error(`${name} went away`), { code: Status.UNAVAILABLE });
      },
    },
  };
  return t;
}

describe('PeerPoolExecutor', () => {
  it('sends an action to the peer with the most room and says which peer ran it', async () => {
    const small = peer('peer:small', 1);
    const big = peer('peer:big', 3);
    const pool = new PeerPoolExecutor({ targets: () => [small, big] });
    const out = await pool.run(action('1'), new AbortController().signal);
    expect(out.ranOn).toBe('peer:big');
    expect(big.fake.runs).toHaveLength(1);
    expect(small.fake.runs).toHaveLength(0);
  });

  it('keeps an invocation on the peer that ran its last action while that peer has room', async () => {
    const a = peer('peer:a', 2);
    const b = peer('peer:b', 8);
    const pool = new PeerPoolExecutor({ targets: () => [a, b] });
    // b has the most room, so the invocation starts there…
    expect((await pool.run(action('1', 'inv-1'), new AbortController().signal)).ranOn).toBe('peer:b');
    b.slots = 1; // …and stays there though a now has more room,
    a.slots = 5;
    expect((await pool.run(action('2', 'inv-1'), new AbortController().signal)).ranOn).toBe('peer:b');
    // while another invocation goes where the room is.
    expect((await pool.run(action('3', 'inv-2'), new AbortController().signal)).ranOn).toBe('peer:a');
  });

  it('sends work to the overflow (the upstream) only once no peer has room, and retries there', async () => {
    const small = peer('peer:small', 1);
    const upstream = peer('upstream', 16);
    const pool = new PeerPoolExecutor({ targets: () => [small], overflow: upstream });
    expect(pool.capacity().slots).toBe(17);
    expect((await pool.run(action('1'), new AbortController().signal)).ranOn).toBe('peer:small');
    small.slots = 0;
    expect((await pool.run(action('2'), new AbortController().signal)).ranOn).toBe('upstream');
    const gone = vanishing('peer:gone', 9);
    const withGone = new PeerPoolExecutor({ targets: () => [gone], overflow: upstream });
    expect((await withGone.run(action('3'), new AbortController().signal)).ranOn).toBe('upstream');
  });

  it('leaves a peer that has no room (busy person, paused, execution off) alone', async () => {
    const busy = peer('peer:busy', 0);
    const pool = new PeerPoolExecutor({ targets: () => [busy] });
    expect(pool.capacity()).toMatchObject({ ready: false, slots: 0 });
    await expect(pool.run(action('1'), new AbortController().signal)).rejects.toBeInstanceOf(NoRemoteTargetError);
    expect(busy.fake.runs).toHaveLength(0);
  });

  it('retries an action on another peer when the first one disappears mid-action', async () => {
    const gone = vanishing('peer:gone', 9);
    const other = peer('peer:other', 1);
    const pool = new PeerPoolExecutor({ targets: () => [gone, other] });
    const out = await pool.run(action('1'), new AbortController().signal);
    expect(gone.attempts).toBe(1);
    expect(out.ranOn).toBe('peer:other');
  });

  it('gives up with NoRemoteTargetError (never the peer error) once every peer failed, trying each once', async () => {
    const a = vanishing('peer:a');
    const b = vanishing('peer:b');
    const pool = new PeerPoolExecutor({ targets: () => [a, b] });
    const err = await pool.run(action('1'), new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoRemoteTargetError);
    expect((err as Error).message).toMatch(/went away/);
    expect([a.attempts, b.attempts]).toEqual([1, 1]);
  });

  it('does not retry a cancelled action elsewhere', async () => {
    const a = vanishing('peer:a');
    const b = peer('peer:b', 1);
    const pool = new PeerPoolExecutor({ targets: () => [a, b] });
    const abort = new AbortController();
    abort.abort();
    await expect(pool.run(action('1'), abort.signal)).rejects.toThrow(/went away/);
    expect(b.fake.runs).toHaveLength(0);
  });
});

describe('PlacementExecutor with a peer pool', () => {
  function placement(local: FakeExecutor, targets: PoolTarget[], localEnabled = true) {
    return new PlacementExecutor(local, new PeerPoolExecutor({ targets: () => targets }), {
      policy: 'local-first',
      localSlots: () => 1,
      localEnabled: () => localEnabled,
      isUnreachable: (err) => err instanceof NoRemoteTargetError,
    });
  }

  it('overflows to a peer when the local slot is busy, and runs locally when every peer is gone', async () => {
    const local = new FakeExecutor();
    const p = peer('peer:p', 1);
    const exec = placement(local, [p]);
    const first = exec.run(action('1'), new AbortController().signal);
    await local.started(1);
    expect((await exec.run(action('2'), new AbortController().signal)).ranOn).toBe('peer:p');
    local.runs[0]!.finish();
    expect((await first).ranOn).toBe('local');

    const lonely = placement(local, [vanishing('peer:gone')]);
    const blocker = lonely.run(action('3'), new AbortController().signal);
    await local.started(2);
    const overflow = lonely.run(action('4'), new AbortController().signal);
    await local.started(3);
    local.runs[1]!.finish();
    local.runs[2]!.finish();
    expect((await overflow).ranOn).toBe('local');
    await blocker;
  });

  it('runs a forwarded action here, never on a peer, and refuses it UNAVAILABLE while every local slot is busy', async () => {
    const local = new FakeExecutor();
    const p = peer('peer:p', 4);
    const exec = placement(local, [p]);
    const first = exec.run(action('1', undefined, true), new AbortController().signal);
    await local.started(1);
    // The one local slot is busy: a plain action overflows to the peer, a forwarded one goes back to its sender.
    expect((await exec.run(action('2'), new AbortController().signal)).ranOn).toBe('peer:p');
    await expect(exec.run(action('3', undefined, true), new AbortController().signal)).rejects.toMatchObject({ code: Status.UNAVAILABLE });
    expect(p.fake.runs).toHaveLength(1);
    local.runs[0]!.finish();
    expect((await first).ranOn).toBe('local');
  });

  it('refuses a forwarded action UNAVAILABLE while execution is off here, so the sender places it elsewhere', async () => {
    const local = new FakeExecutor();
    const exec = placement(local, [], false);
    await expect(exec.run(action('1', undefined, true), new AbortController().signal)).rejects.toMatchObject({ code: Status.UNAVAILABLE });
    expect(local.runs).toHaveLength(0);
  });
});
