// The scheduler with a fake Executor under the engine's decorators (so caching
// shows), a ManualClock, in-memory stores.
import { status as Status } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../engine/clock';
import type { BlobDigest } from '../../engine/digest';
import { EventBus, type KilnEvent } from '../../engine/events/event-bus';
import { GrpcError, missingBlobs } from '../../engine/grpc/status';
import { reapi, rpc } from '../../engine/proto';
import type { OperationSnapshot } from '../../engine/scheduler/operation';
import { Scheduler, logPathsIn, type ExecutionRequest } from '../../engine/scheduler/scheduler';
import { MemoryActionCacheStore } from '../../engine/store/action-cache-store';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import { decorateExecutor } from '../../engine/executor-factory';
import { FakeExecutor, flush } from './fake-executor';

let dir: string;
let clock: ManualClock;
let events: KilnEvent[];
let bus: EventBus;
let executor: FakeExecutor;
let actionCache: MemoryActionCacheStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-sched-'));
  clock = new ManualClock();
  bus = new EventBus();
  events = [];
  bus.subscribe((e) => events.push(e));
  executor = new FakeExecutor();
  actionCache = new MemoryActionCacheStore();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function scheduler(over: Partial<ConstructorParameters<typeof Scheduler>[0]> & { orphanTimeoutMs?: number } = {}): Scheduler {
  let n = 0;
  const { orphanTimeoutMs, ...rest } = over;
  const log = over.log ?? (() => {});
  return new Scheduler({
    executor: decorateExecutor(executor, { actionCache, log, clock, orphanTimeoutMs }),
    concurrency: 1,
    queueSize: 100,
    operationRetentionMs: 10 * 60_000,
    logPathsFor: logPathsIn(dir),
    events: bus,
    clock,
    ids: { next: () => `op-${++n}` },
    ...rest,
  });
}

function digest(): BlobDigest {
  return { fn: 'sha256', hash: randomBytes(32).toString('hex'), size: 42 };
}

function request(over: Partial<ExecutionRequest> & { doNotCache?: boolean } = {}): ExecutionRequest {
  const { doNotCache, ...rest } = over;
  return {
    instance: '',
    actionDigest: digest(),
    action: reapi.Action.create({ doNotCache: !!doNotCache }),
    command: reapi.Command.create({ arguments: ['/bin/true'] }),
    timeoutMs: 60_000,
    ...rest,
  };
}

/** Every state a watcher sees until the operation is done. */
function record(s: Scheduler, name: string): { states: OperationSnapshot[]; done: Promise<OperationSnapshot> } {
  const states: OperationSnapshot[] = [];
  let resolve!: (op: OperationSnapshot) => void;
  const done = new Promise<OperationSnapshot>((r) => (resolve = r));
  s.watch(name, (op) => {
    states.push(op);
    if (op.done) resolve(op);
  });
  return { states, done };
}

describe('Scheduler', () => {
  it('moves an operation QUEUED → EXECUTING → COMPLETED, emitting events and caching a success', async () => {
    const s = scheduler({ streamNamesFor: (id) => ({ stdout: `logs/${id}/stdout`, stderr: `logs/${id}/stderr` }) });
    const req = request({ requestMetadata: { actionMnemonic: 'CppCompile', targetId: '//a:b', toolInvocationId: 'inv-1' } });
    const op = s.submit(req);
    expect(op.name).toBe('operations/op-1');
    const { states, done } = record(s, op.name);
    const [run] = await executor.started(1);
    expect(run.action.logs.stdout.path).toBe(join(dir, 'logs', 'op-1.stdout'));
    run.finish({ exitCode: 0 });
    const final = await done;

    expect(states.map((o) => o.stage)).toEqual(['EXECUTING', 'COMPLETED']);
    expect(states[0].streamNames).toEqual({ stdout: 'logs/op-1/stdout', stderr: 'logs/op-1/stderr' });
    expect(final.response?.status?.code).toBe(Status.OK);
    expect(final.response?.result?.executionMetadata?.queuedTimestamp).toBeTruthy();
    expect(await actionCache.get('', req.actionDigest)).toBeDefined();

    const types = events.map((e) => e.type);
    expect(types).toEqual(['action.queued', 'worker.slot', 'action.started', 'action.stage', 'action.stage', 'worker.slot', 'action.finished']);
    const queued = events[0] as Extract<KilnEvent, { type: 'action.queued' }>;
    expect(queued).toMatchObject({ id: 'op-1', mnemonic: 'CppCompile', target: '//a:b', toolInvocationId: 'inv-1' });
    expect(queued.details?.argv).toEqual(['/bin/true']);
    expect(events[1]).toMatchObject({ busy: true, slot: 0, actionId: 'op-1' });
    expect(events.at(-1)).toMatchObject({ type: 'action.finished', outcome: 'success', exitCode: 0 });
  });

  it('runs identical cacheable actions once and completes every caller', async () => {
    const s = scheduler();
    const req = request();
    const a = s.submit(req);
    const b = s.submit({ ...req });
    expect(a.name).not.toBe(b.name);
    expect(b.jobId).toBe(a.jobId);
    const da = record(s, a.name).done;
    const db = record(s, b.name).done;
    (await executor.started(1))[0].finish({ exitCode: 0 });
    const [ra, rb] = await Promise.all([da, db]);
    expect(ra.response?.status?.code).toBe(Status.OK);
    expect(rb.response?.status?.code).toBe(Status.OK);
    expect(executor.runs).toHaveLength(1);
  });

  it('never merges do_not_cache actions', async () => {
    const s = scheduler({ concurrency: 2 });
    const req = request({ doNotCache: true });
    s.submit(req);
    s.submit({ ...req });
    const runs = await executor.started(2);
    runs.forEach((r) => r.finish({ exitCode: 0 }));
    await flush();
    expect(executor.runs).toHaveLength(2);
    expect(await actionCache.get('', req.actionDigest)).toBeUndefined();
  });

  it('refuses work beyond the queue with RESOURCE_EXHAUSTED saying how many wait and what to raise', async () => {
    const s = scheduler({ queueSize: 1 });
    s.submit(request()); // runs
    s.submit(request()); // waits
    let err: unknown;
    try {
      s.submit(request());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GrpcError);
    expect((err as GrpcError).code).toBe(Status.RESOURCE_EXHAUSTED);
    expect((err as GrpcError).message).toMatch(/1 actions are waiting/);
    expect((err as GrpcError).message).toMatch(/queue-size/);
  });

  it('tells a caller up front that a full queue would refuse an action, unless an identical one is in flight to join', async () => {
    const s = scheduler({ queueSize: 1 });
    const running = request();
    const waiting = request();
    expect(s.refusalWhenFull('', waiting.actionDigest)).toBeUndefined(); // room left
    s.submit(running);
    s.submit(waiting);
    const refusal = s.refusalWhenFull('', digest());
    expect(refusal?.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(refusal?.message).toMatch(/queue is full: 1 actions are waiting/);
    // Identical to one queued or running: submit() would join it, so no refusal.
    expect(s.refusalWhenFull('', waiting.actionDigest)).toBeUndefined();
    expect(s.refusalWhenFull('', running.actionDigest)).toBeUndefined();
    expect(s.submit(request({ actionDigest: waiting.actionDigest })).stage).toBe('QUEUED');
  });

  it('runs lower priority values first, first-come first-served within a priority', async () => {
    const s = scheduler();
    s.submit(request()); // occupies the only slot
    const names = new Map<string, string>();
    for (const [label, priority] of [['a5', 5], ['b1', 1], ['c5', 5], ['d1', 1], ['e-2', -2]] as const) {
      names.set(s.submit(request({ priority })).jobId, label);
    }
    expect(s.view().queued.map((id) => names.get(id))).toEqual(['e-2', 'b1', 'd1', 'a5', 'c5']);
    const order: string[] = [];
    await executor.started(1);
    for (let i = 0; i < 5; i++) {
      executor.runs[i].finish({ exitCode: 0 });
      const runs = await executor.started(i + 2);
      order.push(names.get(runs[i + 1].action.id)!);
    }
    expect(order).toEqual(['e-2', 'b1', 'd1', 'a5', 'c5']);
  });

  it('cancels a queued action: it completes CANCELLED and never runs', async () => {
    const s = scheduler();
    s.submit(request());
    const queued = s.submit(request());
    const done = record(s, queued.name).done;
    expect(s.cancel(queued.name)).toBe(true);
    expect((await done).response?.status?.code).toBe(Status.CANCELLED);
    expect(s.view().queueDepth).toBe(0);
    executor.runs[0].finish({ exitCode: 0 });
    await flush();
    expect(executor.runs).toHaveLength(1);
    expect(events.filter((e) => e.type === 'action.finished' && e.outcome === 'cancelled')).toHaveLength(1);
  });

  it('cancels a running action by aborting its executor', async () => {
    const s = scheduler();
    const op = s.submit(request());
    const [run] = await executor.started(1);
    const done = record(s, op.name).done;
    s.cancel(op.name);
    expect(run.signal.aborted).toBe(true);
    expect((await done).response?.status?.code).toBe(Status.CANCELLED);
    await run.done;
    await flush();
    expect(s.view().running).toBe(0);
  });

  it('keeps a shared run going while another caller still waits for it', async () => {
    const s = scheduler();
    const req = request();
    const a = s.submit(req);
    const b = s.submit({ ...req });
    const [run] = await executor.started(1);
    s.cancel(a.name);
    expect(run.signal.aborted).toBe(false);
    const done = record(s, b.name).done;
    run.finish({ exitCode: 0 });
    expect((await done).response?.status?.code).toBe(Status.OK);
  });

  it('does not merge with a run that is being cancelled', async () => {
    const s = scheduler({ concurrency: 2 });
    const req = request();
    const a = s.submit(req);
    await executor.started(1);
    s.cancel(a.name);
    const b = s.submit({ ...req });
    expect(b.jobId).not.toBe(a.jobId);
  });

  it('forgets finished operations after the retention window, and late watchers get the final state at once', async () => {
    const s = scheduler({ operationRetentionMs: 60_000 });
    const op = s.submit(request());
    (await executor.started(1))[0].finish({ exitCode: 0 });
    await record(s, op.name).done;
    clock.advance(59_000);
    const late: OperationSnapshot[] = [];
    s.watch(op.name, (o) => late.push(o));
    expect(late).toHaveLength(1);
    expect(late[0].done).toBe(true);
    clock.advance(2_000);
    expect(s.get(op.name)).toBeUndefined();
    expect(s.watch(op.name, () => {})).toBeUndefined();
  });

  it('when switched off refuses new work with UNAVAILABLE but finishes what was queued', async () => {
    const s = scheduler();
    s.submit(request());
    const queued = s.submit(request());
    const done = record(s, queued.name).done;
    s.setEnabled(false);
    expect(() => s.submit(request())).toThrow(/execution is paused/);
    try {
      s.submit(request());
    } catch (e) {
      expect((e as GrpcError).code).toBe(Status.UNAVAILABLE);
    }
    (await executor.started(1))[0].finish({ exitCode: 0 });
    (await executor.started(2))[1].finish({ exitCode: 0 });
    expect((await done).response?.status?.code).toBe(Status.OK);
  });

  it('reports a non-zero exit as OK with the exit code, and does not cache it', async () => {
    const s = scheduler();
    const req = request();
    const op = s.submit(req);
    (await executor.started(1))[0].finish({ exitCode: 3 });
    const final = await record(s, op.name).done;
    expect(final.response?.status?.code).toBe(Status.OK);
    expect(final.response?.result?.exitCode).toBe(3);
    expect(await actionCache.get('', req.actionDigest)).toBeUndefined();
    expect(events.at(-1)).toMatchObject({ type: 'action.finished', outcome: 'failure', exitCode: 3 });
  });

  it('reports a timeout as DEADLINE_EXCEEDED with the partial result, uncached', async () => {
    const s = scheduler();
    const req = request();
    const op = s.submit(req);
    (await executor.started(1))[0].finish({ status: 'timeout', exitCode: 0 });
    const final = await record(s, op.name).done;
    expect(final.response?.status?.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(final.response?.result).toBeTruthy();
    expect(await actionCache.get('', req.actionDigest)).toBeUndefined();
  });

  it("names the knob that gives a timed-out action more time: a test's --test_timeout or size, otherwise the timeout exec property, never --remote_timeout", async () => {
    const s = scheduler({ concurrency: 2 });
    const test = s.submit(request({ command: reapi.Command.create({ arguments: ['external/bazel_tools/tools/test/test-setup.sh', 'pkg/my_test'] }) }));
    const build = s.submit(request({ timeoutMs: 90_000 }));
    for (const run of await executor.started(2)) run.finish({ status: 'timeout', exitCode: 0 });
    const [t, b] = [await record(s, test.name).done, await record(s, build.name).done];
    expect(t.response?.status?.message).toMatch(/--test_timeout/);
    expect(t.response?.status?.message).toMatch(/size/);
    expect(b.response?.status?.message).toMatch(/after 90 s.*"timeout" exec property/);
    for (const m of [t.response?.status?.message, b.response?.status?.message]) expect(m).not.toMatch(/remote_timeout/);
  });

  it('passes an executor GrpcError through with its details, and turns anything else into INTERNAL', async () => {
    const s = scheduler({ concurrency: 2 });
    const a = s.submit(request());
    const b = s.submit(request());
    const [ra, rb] = await executor.started(2);
    ra.fail(missingBlobs([digest()], 'input'));
    rb.fail(new Error('disk on fire'));
    const fa = await record(s, a.name).done;
    const fb = await record(s, b.name).done;
    expect(fa.response?.status?.code).toBe(Status.FAILED_PRECONDITION);
    const detail = fa.response?.status?.details?.[0];
    const pf = rpc.PreconditionFailure.decode(detail!.value!);
    expect(pf.violations[0].type).toBe('MISSING');
    expect(fb.response?.status?.code).toBe(Status.INTERNAL);
    expect(fb.response?.status?.message).toMatch(/disk on fire/);
  });

  it('on stop cancels queued work, drains running actions, then aborts what is left', async () => {
    const s = scheduler();
    const running = s.submit(request());
    const queued = s.submit(request());
    const [run] = await executor.started(1);
    const dq = record(s, queued.name).done;
    const dr = record(s, running.name).done;
    await s.stop(50);
    expect((await dq).response?.status?.code).toBe(Status.CANCELLED);
    expect(run.signal.aborted).toBe(true);
    expect((await dr).response?.status?.code).toBe(Status.CANCELLED);
    expect(executor.runs).toHaveLength(1);
    expect(() => s.submit(request())).toThrow(/shutting down/);
  });
});

describe('Scheduler.setConcurrency', () => {
  const slotEvents = () => events.filter((e): e is Extract<KilnEvent, { type: 'worker.slot' }> => e.type === 'worker.slot');

  it('growing starts queued work on the new slots at once', async () => {
    const s = scheduler({ concurrency: 1 });
    for (let i = 0; i < 3; i++) s.submit(request());
    await executor.started(1);
    await flush();
    expect(executor.runs).toHaveLength(1);
    expect(s.view()).toMatchObject({ concurrency: 1, running: 1, queueDepth: 2 });
    s.setConcurrency(3);
    await executor.started(3);
    expect(s.view()).toMatchObject({ concurrency: 3, running: 3, queueDepth: 0 });
    expect(slotEvents().filter((e) => e.busy).map((e) => e.slot)).toEqual([0, 1, 2]);
    expect(s.view().slots.map((x) => x.slot)).toEqual([0, 1, 2]);
  });

  it('shrinking lets running actions finish and does not refill the removed slots', async () => {
    const s = scheduler({ concurrency: 2 });
    for (let i = 0; i < 3; i++) s.submit(request());
    const [first, second] = await executor.started(2);
    s.setConcurrency(1);
    // Both still run; the removed slot 1 shows until its action is done.
    expect(second.signal.aborted).toBe(false);
    expect(s.view()).toMatchObject({ concurrency: 1, running: 2, queueDepth: 1 });
    expect(s.view().slots.map((x) => x.slot)).toEqual([0, 1]);

    second.finish({ exitCode: 0 });
    await second.done;
    await flush();
    expect(executor.runs).toHaveLength(2); // slot 1 is gone, slot 0 is busy: the queued one waits
    expect(s.view()).toMatchObject({ concurrency: 1, running: 1, queueDepth: 1 });
    expect(s.view().slots.map((x) => x.slot)).toEqual([0]);
    expect(slotEvents().at(-1)).toMatchObject({ slot: 1, busy: false });

    first.finish({ exitCode: 0 });
    const [, , third] = await executor.started(3);
    expect(slotEvents().at(-1)).toMatchObject({ slot: 0, busy: true, actionId: third.action.id });
    expect(() => s.setConcurrency(0)).toThrow(/concurrency must be ≥ 1/);
  });
});

describe('Scheduler orphan timeout', () => {
  const TIMEOUT = 10 * 60_000;
  /** The operation's state without touching it (get() counts as a caller asking). */
  const peek = (s: Scheduler, name: string) => s.list().find((o) => o.name === name)!;
  /** Lets the reaped run unwind until the operation is done (the decorator cancels through the executor, not at once). */
  const settled = async (s: Scheduler, name: string) => {
    for (let i = 0; i < 50 && !peek(s, name).done; i++) await flush();
  };
  /** Watches like an Execute stream would, and returns the function that drops it. */
  const attach = (s: Scheduler, name: string) => s.watch(name, () => {})!;

  // The reaper is an executor decorator: a queued orphan is cancelled when it reaches a slot (here: as soon as the running one is reaped).
  it('cancels queued and running actions nobody has watched for the timeout, with a log line', async () => {
    const lines: string[] = [];
    const s = scheduler({ orphanTimeoutMs: TIMEOUT, log: (l) => lines.push(l) });
    const running = s.submit(request());
    const queued = s.submit(request());
    const [run] = await executor.started(1);
    attach(s, running.name)();
    attach(s, queued.name)();

    clock.advance(TIMEOUT - 1);
    await flush();
    expect(peek(s, running.name).done).toBe(false);
    expect(peek(s, queued.name).done).toBe(false);
    expect(run.signal.aborted).toBe(false);

    clock.advance(1);
    await settled(s, queued.name);
    for (const name of [running.name, queued.name]) {
      const op = peek(s, name);
      expect(op.done).toBe(true);
      expect(op.response?.status?.code).toBe(Status.CANCELLED);
      expect(op.response?.status?.message).toContain('nobody was waiting for it for 10 minutes');
    }
    expect(run.signal.aborted).toBe(true);
    expect(executor.runs).toHaveLength(1); // the queued one never ran
    expect(lines.filter((l) => l.includes('nobody was waiting for it for 10 minutes'))).toHaveLength(2);
    expect(lines.filter((l) => l.includes('cancelled queued action'))).toHaveLength(1);
    expect(events.filter((e) => e.type === 'action.finished' && e.outcome === 'cancelled')).toHaveLength(2);
  });

  it('keeps an action whose caller re-attaches (or asks GetOperation) within the timeout, counting again from when it leaves', async () => {
    const s = scheduler({ orphanTimeoutMs: TIMEOUT });
    const op = s.submit(request());
    const [run] = await executor.started(1);
    attach(s, op.name)();

    clock.advance(TIMEOUT - 1000);
    const detach = attach(s, op.name); // WaitExecution re-attaches
    clock.advance(3 * TIMEOUT); // watched all along
    expect(run.signal.aborted).toBe(false);

    detach();
    clock.advance(TIMEOUT - 1000);
    expect(s.get(op.name)?.done).toBe(false); // GetOperation restarts the count
    clock.advance(TIMEOUT - 1000);
    expect(run.signal.aborted).toBe(false);
    expect(peek(s, op.name).done).toBe(false);

    clock.advance(1000);
    expect(run.signal.aborted).toBe(true);
    await settled(s, op.name);
    expect(peek(s, op.name).response?.status?.code).toBe(Status.CANCELLED);
  });

  it('keeps a deduplicated run going while one caller still watches, and completes every caller', async () => {
    const s = scheduler({ orphanTimeoutMs: TIMEOUT });
    const req = request();
    const a = s.submit(req);
    const b = s.submit({ ...req });
    expect(b.jobId).toBe(a.jobId);
    const [run] = await executor.started(1);
    attach(s, a.name)(); // a's caller goes away
    const doneB = record(s, b.name).done;

    clock.advance(3 * TIMEOUT);
    await flush();
    expect(run.signal.aborted).toBe(false);
    expect(peek(s, a.name).done).toBe(false);

    run.finish({ exitCode: 0 });
    expect((await doneB).response?.status?.code).toBe(Status.OK);
    expect(peek(s, a.name).response?.status?.code).toBe(Status.OK);
  });

  it('cancels a deduplicated run once its last caller has been gone for the timeout too', async () => {
    const s = scheduler({ orphanTimeoutMs: TIMEOUT });
    const req = request();
    const a = s.submit(req);
    const b = s.submit({ ...req });
    const [run] = await executor.started(1);
    attach(s, a.name)();
    const detachB = attach(s, b.name);
    clock.advance(TIMEOUT);
    detachB();
    clock.advance(TIMEOUT - 1);
    expect(run.signal.aborted).toBe(false);
    clock.advance(1);
    expect(run.signal.aborted).toBe(true);
    await settled(s, b.name);
    expect(peek(s, a.name).response?.status?.code).toBe(Status.CANCELLED);
    expect(peek(s, b.name).response?.status?.code).toBe(Status.CANCELLED);
  });

  it('never cancels unwatched actions without an orphan timeout', async () => {
    const s = scheduler();
    const op = s.submit(request());
    const [run] = await executor.started(1);
    clock.advance(100 * TIMEOUT);
    expect(run.signal.aborted).toBe(false);
    expect(peek(s, op.name).done).toBe(false);
  });
});

describe('Scheduler: hold, signals and cancel from the dashboard (the polite farm)', () => {
  const peek = (s: Scheduler, name: string) => s.list().find((o) => o.name === name)!;
  it('holds queued actions while held, accepting new ones, and starts them when released', async () => {
    const s = scheduler({ concurrency: 2 });
    s.hold(true);
    const a = s.submit(request());
    const b = s.submit(request());
    await flush();
    expect(executor.runs).toHaveLength(0);
    expect(s.view()).toMatchObject({ held: true, queueDepth: 2, running: 0 });
    expect(peek(s, a.name).stage).toBe('QUEUED');
    s.hold(false);
    await executor.started(2);
    expect(s.view()).toMatchObject({ held: false, queueDepth: 0, running: 2 });
    expect(peek(s, b.name).stage).toBe('EXECUTING');
  });

  it('signals a running action through its executor, records it, and marks it stopped until CONT', async () => {
    const s = scheduler();
    const op = s.submit(request());
    await executor.started(1);
    expect(s.signal(op.id, 'STOP', 'a test')).toBe('paused (SIGSTOP)');
    expect(s.view().slots[0]).toMatchObject({ actionId: op.id, stopped: true });
    expect(s.runningActions()).toEqual([{ id: op.id, stopped: true }]);
    expect(s.signal(op.id, 'CONT')).toBe('resumed (SIGCONT)');
    expect(s.view().slots[0].stopped).toBeUndefined();
    expect(executor.signals).toEqual([
      { id: op.id, signal: 'STOP' },
      { id: op.id, signal: 'CONT' },
    ]);
    expect(events.filter((e) => e.type === 'action.control')).toMatchObject([
      { id: op.id, control: 'signal', signal: 'STOP', by: 'a test', result: 'paused (SIGSTOP)' },
      { id: op.id, control: 'signal', signal: 'CONT', result: 'resumed (SIGCONT)' },
    ]);
  });

  it('answers undefined when signalling an action that is not running', async () => {
    const s = scheduler();
    const running = s.submit(request());
    const queued = s.submit(request());
    await executor.started(1);
    expect(s.signal(queued.id, 'TERM')).toBeUndefined();
    expect(s.signal('no-such-action', 'TERM')).toBeUndefined();
    expect(s.signal(running.id, 'TERM')).toBe('sent SIGTERM');
  });

  it('cancels a running action for every caller on it, and a queued one before it starts', async () => {
    const s = scheduler();
    const req = request();
    const a = s.submit(req);
    const b = s.submit({ ...req });
    const queued = s.submit(request());
    const [run] = await executor.started(1);
    expect(s.cancelAction(a.id)).toMatch(/cancelled while running/);
    expect(run.signal.aborted).toBe(true);
    expect(peek(s, a.name).response?.status?.code).toBe(Status.CANCELLED);
    expect(peek(s, b.name).response?.status?.code).toBe(Status.CANCELLED);
    await executor.started(2);
    expect(executor.runs[1].action.id).toBe(queued.id);
    expect(s.cancelAction('no-such-action')).toBeUndefined();
  });

  it('reports Execute calls it refuses while execution is off', () => {
    const s = scheduler({ enabled: false });
    expect(() => s.submit(request())).toThrow(GrpcError);
    expect(events.filter((e) => e.type === 'execution.refused')).toMatchObject([{ reason: 'off' }]);
  });
});
