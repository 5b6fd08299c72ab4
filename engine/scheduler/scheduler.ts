// The scheduler: a bounded priority queue in front of `concurrency` worker slots.
// It deduplicates identical cacheable actions (one run, many callers), keeps
// actions running when their callers go away, and remembers finished operations
// for a retention window so clients can re-attach. Callers watch operations;
// nothing polls. What happens around a run (caching, metadata, result shaping)
// belongs to the Executor's decorators (engine/execution/), and inlining
// stdout/stderr per caller to the Execution service.
//
// Vocabulary: a *job* is one run of an action on a slot; an *operation* is one
// caller's view of a job. Deduplicated callers get their own operations on a
// shared job; the job is cancelled only when every operation on it is.
//
// Attention: each job tells its executor (PreparedAction.attention) since when
// every caller on it has been gone, so an executor decorator can cancel actions
// nobody waits for (engine/execution/orphan-reaping-executor.ts).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { actionRole } from '../common/action-role';
import type { ExecutionStage } from '../common/action-vocabulary';
import type { ActionSignal } from '../common/farm-modes';
import { systemClock, uuidIds, type Clock, type IdSource } from '../clock';
import { digestKey, formatDigest, type BlobDigest } from '../digest';
import { cachedActionEvents, digestText } from '../events/cached-action';
import { nullSink, type EventSink } from '../events/event-bus';
import { requestOrigin } from '../grpc/services';
import { resourceExhausted, unavailable, type GrpcError } from '../grpc/status';
import { reapi } from '../proto';
import type { Attention, ExecutionOutcome, Executor, PreparedAction } from '../execution/executor';
import { FileLogSink } from '../execution/log-sink';
import { actionDetails } from './action-details';
import { OPERATION_PREFIX, type OperationSnapshot, type OperationStage, type StreamNames } from './operation';
import { cancelledVerdict, timingBreakdown, verdictFromError, verdictFromOutcome, type RunVerdict } from './outcome';
import { PriorityQueue } from './priority-queue';

export const EXECUTION_PAUSED_MESSAGE =
  'execution is paused on this Kiln; turn it on in the tray or dashboard, or POST /api/execution (the cache keeps serving meanwhile)';

export interface ExecutionRequest {
  instance: string;
  actionDigest: BlobDigest;
  action: reapi.Action;
  /** With Action.platform already applied. */
  command: reapi.Command;
  /** Already clamped to the configured default/maximum. */
  timeoutMs: number;
  /** ExecutionPolicy.priority: lower runs sooner. */
  priority?: number;
  inlineStdout?: boolean;
  inlineStderr?: boolean;
  requestMetadata?: reapi.RequestMetadata.$Properties;
  /** A peer Kiln forwarded it: it runs here, never elsewhere (PreparedAction.forwarded). */
  forwarded?: boolean;
}

export interface LogPaths {
  stdout: string;
  stderr: string;
}

export interface SchedulerOptions {
  executor: Executor;
  concurrency: number;
  queueSize: number;
  operationRetentionMs: number;
  enabled?: boolean;
  /** Where an action's stdout/stderr files go; see `logPathsIn`. */
  logPathsFor: (id: string) => LogPaths;
  /** ByteStream names under which live logs can be read, if something serves them. */
  streamNamesFor?: (id: string, instance: string) => StreamNames | undefined;
  events?: EventSink;
  clock?: Clock;
  ids?: IdSource;
  log?: (line: string) => void;
}

/** The default log layout: `{dataDir}/logs/{id}.stdout|.stderr`, creating the folder once. */
export function logPathsIn(dataDir: string): (id: string) => LogPaths {
  const dir = join(dataDir, 'logs');
  let made = false;
  return (id) => {
    if (!made) mkdirSync(dir, { recursive: true });
    made = true;
    const safe = encodeURIComponent(id);
    return { stdout: join(dir, `${safe}.stdout`), stderr: join(dir, `${safe}.stderr`) };
  };
}

export type OperationListener = (op: OperationSnapshot) => void;

/** What the dashboard shows of the scheduler. */
export interface SchedulerView {
  enabled: boolean;
  /** Queued actions wait (the farm is paused); running ones are not affected by the hold itself. */
  held: boolean;
  concurrency: number;
  queueDepth: number;
  running: number;
  slots: { slot: number; actionId?: string; since?: number; stopped?: boolean }[];
  /** Queued action ids in the order they will run. */
  queued: string[];
}

interface Job {
  id: string;
  /** Deduplication key; undefined for do_not_cache actions. */
  key?: string;
  request: ExecutionRequest;
  priority: number;
  queuedAt: number;
  state: 'queued' | 'running' | 'finishing' | 'finished';
  slot?: number;
  startedAt?: number;
  /** Its processes are stopped (SIGSTOP) until a CONT. */
  stopped?: boolean;
  streamNames?: StreamNames;
  abort: AbortController;
  ops: Set<Operation>;
  finished?: Promise<void>;
  /** Told when who-is-watching may have changed. */
  attentionListeners: Set<() => void>;
}

interface Operation {
  seq: number;
  id: string;
  name: string;
  job?: Job;
  jobId: string;
  instance: string;
  actionDigest: BlobDigest;
  queuedAt: number;
  stage: OperationStage;
  done: boolean;
  streamNames?: StreamNames;
  response?: reapi.ExecuteResponse;
  inlineStdout: boolean;
  inlineStderr: boolean;
  watchers: Set<OperationListener>;
  expiry?: { cancel(): void };
  /** Running while nobody watches this (unfinished) operation. */
  /** When it was last watched or asked about (meaningful while nobody watches it). */
  lastSeen: number;
}

export class Scheduler {
  private readonly queue = new PriorityQueue<Job>();
  /** Indexed by slot number; may run past `limit` while removed slots finish their actions. */
  private readonly slots: (Job | undefined)[];
  /** Slots that take new work: 0 … limit-1. */
  private limit: number;
  private readonly inFlight = new Map<string, Job>();
  private readonly operations = new Map<string, Operation>();
  private readonly events: EventSink;
  private readonly clock: Clock;
  private readonly ids: IdSource;
  private readonly log: (line: string) => void;
  private enabledFlag: boolean;
  private held = false;
  private stopping = false;
  private seq = 0;

  constructor(private readonly opts: SchedulerOptions) {
    if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) throw new Error(`concurrency must be ≥ 1, got ${opts.concurrency}`);
    this.slots = new Array(opts.concurrency).fill(undefined);
    this.limit = opts.concurrency;
    this.events = opts.events ?? nullSink;
    this.clock = opts.clock ?? systemClock;
    this.ids = opts.ids ?? uuidIds;
    this.log = opts.log ?? (() => {});
    this.enabledFlag = opts.enabled ?? true;
  }

  get enabled(): boolean {
    return this.enabledFlag;
  }

  /** Off: new submissions are refused; queued and running actions still finish. */
  setEnabled(enabled: boolean): void {
    this.enabledFlag = enabled;
  }

  /**
   * Held: queued actions wait and nothing new starts (the farm is paused);
   * submissions are still accepted and their callers see QUEUED. Releasing
   * starts queued work on the free slots at once.
   */
  hold(held: boolean): void {
    this.held = held;
    if (!held && !this.stopping) this.pump();
  }

  get isHeld(): boolean {
    return this.held;
  }

  /**
   * Sends a signal to a running action's processes (STOP pauses, CONT resumes).
   * Returns what came of it in words, or undefined when no action of that id runs
   * here (queued, finished or unknown).
   */
  signal(actionId: string, signal: ActionSignal, by = 'the dashboard'): string | undefined {
    const job = this.runningJob(actionId);
    if (!job) return undefined;
    const sent = this.opts.executor.signal?.(actionId, signal) ?? false;
    const result = !sent
      ? `the ${signal} signal could not be delivered: the action's executor cannot signal it, or its process has already ended`
      : signal === 'STOP'
        ? 'paused (SIGSTOP)'
        : signal === 'CONT'
          ? 'resumed (SIGCONT)'
          : `sent SIG${signal}`;
    if (sent && (signal === 'STOP' || signal === 'CONT')) job.stopped = signal === 'STOP';
    this.events.emit({ type: 'action.control', id: actionId, at: this.clock.now(), control: 'signal', signal, by, result });
    return result;
  }

  /** Ids of the actions running now, and whether each is stopped. */
  runningActions(): { id: string; stopped: boolean }[] {
    return this.slots.filter((j): j is Job => j !== undefined && j.state === 'running').map((j) => ({ id: j.id, stopped: !!j.stopped }));
  }

  /**
   * Cancels a queued or running action for every caller on it (their operations
   * complete CANCELLED). Returns what came of it, or undefined for an action
   * that is not queued or running here.
   */
  cancelAction(actionId: string, by = 'the dashboard'): string | undefined {
    const job = this.queue.items().find((j) => j.id === actionId) ?? this.runningJob(actionId);
    if (!job) return undefined;
    const why = `the action was cancelled from ${by}`;
    const result = job.state === 'queued' ? 'cancelled before it started' : 'cancelled while running; its processes are stopped';
    this.events.emit({ type: 'action.control', id: actionId, at: this.clock.now(), control: 'cancel', by, result });
    for (const op of [...job.ops]) this.complete(op, cancelledVerdict(why).response);
    this.cancelJob(job, why);
    return result;
  }

  get concurrency(): number {
    return this.limit;
  }

  /**
   * Changes the number of worker slots at run time. Growing starts queued work on
   * the new slots at once; shrinking lets actions running on the removed slots
   * finish and then leaves those slots empty. Slot numbers never move.
   */
  setConcurrency(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new Error(`concurrency must be ≥ 1, got ${n}`);
    this.limit = n;
    while (this.slots.length < n) this.slots.push(undefined);
    this.trimSlots();
    if (!this.stopping) this.pump();
  }

  /**
   * The refusal submit() would give an action now because the queue is full and no
   * identical action is in flight to join, or undefined when it might be accepted.
   * Lets a caller refuse before reading the action from the CAS: under a burst,
   * thousands of calls that cannot be queued must cost next to nothing.
   */
  refusalWhenFull(instance: string, actionDigest: BlobDigest): GrpcError | undefined {
    if (this.stopping || this.queue.size < this.opts.queueSize || this.inFlight.has(dedupKey(instance, actionDigest))) return undefined;
    this.events.emit({ type: 'execution.refused', at: this.clock.now(), reason: 'queue-full' });
    return this.queueFull();
  }

  private queueFull(): GrpcError {
    return resourceExhausted(
      `the execution queue is full: ${this.queue.size} actions are waiting for ${this.limit} worker slot(s); ` +
        `retry later, or raise queue-size (or concurrency) in the Kiln configuration`,
    );
  }

  /**
   * Queues an action, or joins the identical one already queued or running, and
   * returns the operation as accepted (QUEUED, or EXECUTING when joining a running one).
   * Throws UNAVAILABLE when execution is off and RESOURCE_EXHAUSTED when the queue is full.
   */
  submit(request: ExecutionRequest): OperationSnapshot {
    if (this.stopping) {
      this.events.emit({ type: 'execution.refused', at: this.clock.now(), reason: 'stopping' });
      throw unavailable('Kiln is shutting down; retry against a running server');
    }
    if (!this.enabledFlag) {
      this.events.emit({ type: 'execution.refused', at: this.clock.now(), reason: 'off' });
      throw unavailable(EXECUTION_PAUSED_MESSAGE);
    }
    const priority = request.priority ?? 0;
    // A forwarded action joins only other forwarded runs: one that may itself be on a peer could wait on us in a loop.
    const key = request.action.doNotCache ? undefined : dedupKey(request.instance, request.actionDigest) + (request.forwarded ? '|forwarded' : '');
    const existing = key ? this.inFlight.get(key) : undefined;
    if (existing) {
      if (existing.state === 'queued') {
        this.queue.raise(existing, priority);
        existing.priority = Math.min(existing.priority, priority);
      }
      return this.snapshot(this.attach(existing, request, this.ids.next()));
    }
    if (this.queue.size >= this.opts.queueSize) {
      this.events.emit({ type: 'execution.refused', at: this.clock.now(), reason: 'queue-full' });
      throw this.queueFull();
    }
    const id = this.ids.next();
    const job: Job = { id, key, request, priority, queuedAt: this.clock.now(), state: 'queued', abort: new AbortController(), ops: new Set(), attentionListeners: new Set() };
    const op = this.attach(job, request, id);
    if (key) this.inFlight.set(key, job);
    this.queue.push(job, priority);
    const meta = request.requestMetadata;
    this.events.emit({
      type: 'action.queued',
      id,
      at: job.queuedAt,
      actionDigest: formatDigest(request.actionDigest),
      instance: request.instance,
      mnemonic: meta?.actionMnemonic || undefined,
      target: meta?.targetId || undefined,
      toolInvocationId: meta?.toolInvocationId || undefined,
      origin: requestOrigin(meta),
      details: actionDetails(request.action, request.command, request.timeoutMs),
    });
    // The caller learns it was queued even when a free slot starts it right away.
    const accepted = this.snapshot(op);
    this.pump();
    return accepted;
  }

  /** Records an answer that needed no run (an action cache hit), so it can be looked up like any other. */
  recordCompleted(
    instance: string,
    actionDigest: BlobDigest,
    response: reapi.ExecuteResponse,
    requestMetadata?: reapi.RequestMetadata.$Properties,
  ): OperationSnapshot {
    const id = this.ids.next();
    const at = this.clock.now();
    const op = this.newOperation(id, id, instance, actionDigest, at, false, false);
    const result = response.result;
    const facts = cachedActionEvents({
      id,
      at,
      actionDigest: formatDigest(actionDigest),
      instance,
      origin: requestOrigin(requestMetadata),
      exitCode: result?.exitCode ?? 0,
      stdoutDigest: digestText(result?.stdoutDigest),
      stderrDigest: digestText(result?.stderrDigest),
    });
    for (const e of facts) this.events.emit(e);
    this.complete(op, response);
    return this.snapshot(op);
  }

  /** A caller asking (GetOperation) counts as watching. */
  get(name: string): OperationSnapshot | undefined {
    const op = this.operations.get(name);
    if (op && !op.done) this.seen(op);
    return op && this.snapshot(op);
  }

  /**
   * Calls `listener` now with the current state, then on every change until the
   * operation is done. Returns an unsubscribe function, or undefined for an unknown name.
   */
  watch(name: string, listener: OperationListener): (() => void) | undefined {
    const op = this.operations.get(name);
    if (!op) return undefined;
    safeNotify(listener, this.snapshot(op));
    if (op.done) return () => {};
    op.watchers.add(listener);
    this.seen(op);
    return () => {
      if (op.watchers.delete(listener) && op.watchers.size === 0) this.seen(op);
    };
  }

  /** Operations still remembered, newest first. */
  list(): OperationSnapshot[] {
    return [...this.operations.values()].sort((a, b) => b.seq - a.seq).map((op) => this.snapshot(op));
  }

  /**
   * Cancels one caller's operation: it completes CANCELLED at once. The run itself
   * stops (queued: removed; running: aborted) once no other caller shares it.
   * Returns false for an unknown operation; a finished one is left as it is.
   */
  cancel(name: string, why = 'the operation was cancelled (CancelOperation)'): boolean {
    const op = this.operations.get(name);
    if (!op) return false;
    if (op.done) return true;
    const job = op.job;
    this.complete(op, cancelledVerdict(why).response);
    if (job && job.ops.size === 0) this.cancelJob(job, why);
    return true;
  }

  /** Forgets an operation, cancelling it first if it has not finished. */
  delete(name: string): boolean {
    const op = this.operations.get(name);
    if (!op) return false;
    this.cancel(name, 'the operation was deleted (DeleteOperation)');
    op.expiry?.cancel();
    this.operations.delete(name);
    return true;
  }

  view(): SchedulerView {
    return {
      enabled: this.enabledFlag,
      held: this.held,
      concurrency: this.limit,
      queueDepth: this.queue.size,
      running: this.slots.filter(Boolean).length,
      // Removed slots still show while they finish their action.
      slots: this.slots
        .map((job, slot) => (job ? { slot, actionId: job.id, since: job.startedAt, stopped: job.stopped || undefined } : { slot }))
        .filter((s) => s.slot < this.limit || s.actionId !== undefined),
      queued: this.queue.items().map((j) => j.id),
    };
  }

  /**
   * Refuses new work, cancels what is queued, lets running actions finish for up
   * to `drainMs`, then cancels them and waits for their executors to let go.
   */
  async stop(drainMs: number): Promise<void> {
    this.stopping = true;
    for (const job of this.queue.items()) this.cancelJob(job, 'Kiln is shutting down; the action never started', true);
    const running = () => this.slots.filter((j): j is Job => j !== undefined).map((j) => j.finished!);
    // Real timers: an injected test clock must not stall shutdown.
    await waitAtMost(Promise.all(running()), drainMs);
    for (const job of this.slots) if (job) this.abortJob(job);
    await waitAtMost(Promise.all(running()), 10_000);
    for (const op of this.operations.values()) op.expiry?.cancel();
  }

  // --- internals ------------------------------------------------------------

  private attach(job: Job, request: ExecutionRequest, id: string): Operation {
    const op = this.newOperation(id, job.id, request.instance, request.actionDigest, this.clock.now(), !!request.inlineStdout, !!request.inlineStderr);
    op.job = job;
    if (job.state === 'running') {
      op.stage = 'EXECUTING';
      op.streamNames = job.streamNames;
    }
    job.ops.add(op);
    // Nobody watches it yet; Execute subscribes right after submitting.
    this.seen(op);
    return op;
  }

  private newOperation(id: string, jobId: string, instance: string, actionDigest: BlobDigest, queuedAt: number, inlineStdout: boolean, inlineStderr: boolean): Operation {
    const op: Operation = {
      seq: ++this.seq,
      id,
      name: `${OPERATION_PREFIX}${id}`,
      jobId,
      instance,
      actionDigest,
      queuedAt,
      stage: 'QUEUED',
      done: false,
      inlineStdout,
      inlineStderr,
      watchers: new Set(),
      lastSeen: queuedAt,
    };
    this.operations.set(op.name, op);
    return op;
  }

  private runningJob(actionId: string): Job | undefined {
    return this.slots.find((j) => j?.id === actionId && j.state === 'running');
  }

  private pump(): void {
    if (this.held) return;
    for (let slot = 0; slot < this.limit && this.queue.size > 0; slot++) {
      if (this.slots[slot]) continue;
      this.start(this.queue.shift()!, slot);
    }
  }

  /** Drops removed slots (at or past the limit) once nothing runs on them. */
  private trimSlots(): void {
    while (this.slots.length > this.limit && this.slots[this.slots.length - 1] === undefined) this.slots.pop();
  }

  private start(job: Job, slot: number): void {
    const { request } = job;
    const now = this.clock.now();
    job.state = 'running';
    job.startedAt = now;
    let paths: LogPaths;
    try {
      paths = this.opts.logPathsFor(job.id);
      job.streamNames = this.opts.streamNamesFor?.(job.id, request.instance);
    } catch (err) {
      // No log folder: the action cannot run, but the slot stays free for the next one.
      job.finished = this.finish(job, verdictFromError(err));
      return;
    }
    job.slot = slot;
    this.slots[slot] = job;
    this.events.emit({ type: 'worker.slot', at: now, slot, busy: true, actionId: job.id });
    this.events.emit({ type: 'action.started', id: job.id, at: now, slot, stdoutPath: paths.stdout, stderrPath: paths.stderr });
    for (const op of job.ops) {
      op.stage = 'EXECUTING';
      op.streamNames = job.streamNames;
      this.notify(op);
    }
    const prepared: PreparedAction = {
      id: job.id,
      instance: request.instance,
      actionDigest: request.actionDigest,
      action: request.action,
      command: request.command,
      timeoutMs: request.timeoutMs,
      queuedAt: job.queuedAt,
      logs: { stdout: new FileLogSink(paths.stdout), stderr: new FileLogSink(paths.stderr) },
      attention: this.attentionOf(job),
      invocationId: request.requestMetadata?.toolInvocationId || undefined,
      forwarded: request.forwarded,
    };
    const hooks = {
      onStage: (stage: ExecutionStage, at: number) =>
        this.events.emit({ type: 'action.stage', id: job.id, at, stage }),
      onInputs: (inputFiles: number, inputBytes: number) =>
        this.events.emit({ type: 'action.stage', id: job.id, at: this.clock.now(), stage: 'fetching-inputs', inputFiles, inputBytes }),
    };
    job.finished = Promise.resolve()
      .then(() => this.opts.executor.run(prepared, job.abort.signal, hooks))
      .then(
        (run) => this.finish(job, verdictFromOutcome(run, request.timeoutMs, actionRole(request.command.arguments)), run),
        (err) => this.finish(job, verdictFromError(err)),
      );
  }

  private async finish(job: Job, verdict: RunVerdict, run?: ExecutionOutcome): Promise<void> {
    const at = this.clock.now();
    job.state = 'finishing';
    if (job.slot !== undefined && this.slots[job.slot] === job) {
      this.slots[job.slot] = undefined;
      this.events.emit({ type: 'worker.slot', at, slot: job.slot, busy: false });
      this.trimSlots();
    }
    this.pump();
    const result = verdict.response.result;
    this.events.emit({
      type: 'action.finished',
      id: job.id,
      at: this.clock.now(),
      outcome: verdict.outcome,
      exitCode: verdict.exitCode,
      timing: timingBreakdown(job.queuedAt, job.startedAt, at, run),
      inputFiles: run?.inputFiles,
      inputBytes: run?.inputBytes,
      ranOn: run?.ranOn,
      outputs: run?.outputs,
      stdoutDigest: result?.stdoutDigest ? `${result.stdoutDigest.hash}/${result.stdoutDigest.sizeBytes}` : undefined,
      stderrDigest: result?.stderrDigest ? `${result.stderrDigest.hash}/${result.stderrDigest.sizeBytes}` : undefined,
      message: verdict.message,
    });
    job.state = 'finished';
    if (job.key && this.inFlight.get(job.key) === job) this.inFlight.delete(job.key);
    for (const op of [...job.ops]) this.complete(op, verdict.response);
  }

  /** Stops a job nobody waits for any more. */
  private cancelJob(job: Job, why: string, completeWatchers = false): void {
    if (job.key && this.inFlight.get(job.key) === job) this.inFlight.delete(job.key);
    if (job.state === 'queued') {
      this.queue.remove(job);
      job.state = 'finished';
      const at = this.clock.now();
      if (completeWatchers) for (const op of [...job.ops]) this.complete(op, cancelledVerdict(why).response);
      this.events.emit({ type: 'action.finished', id: job.id, at, outcome: 'cancelled', timing: timingBreakdown(job.queuedAt, undefined, at), message: why });
    } else if (job.state === 'running') {
      this.abortJob(job);
    }
  }

  private abortJob(job: Job): void {
    if (job.key && this.inFlight.get(job.key) === job) this.inFlight.delete(job.key);
    job.abort.abort();
  }

  /** Records that a caller watched or asked about `op`, and tells its job's executor. */
  private seen(op: Operation): void {
    op.lastSeen = this.clock.now();
    if (op.job) this.attentionChanged(op.job);
  }

  private attentionChanged(job: Job): void {
    for (const listener of [...job.attentionListeners]) listener();
  }

  /** Since when every caller on `job` has been gone; undefined while one watches. */
  private attentionOf(job: Job): Attention {
    return {
      unwatchedSince: () => {
        const ops = [...job.ops];
        if (ops.length === 0 || ops.some((o) => o.watchers.size > 0)) return undefined;
        return Math.max(...ops.map((o) => o.lastSeen));
      },
      onChange: (listener) => {
        job.attentionListeners.add(listener);
        return () => job.attentionListeners.delete(listener);
      },
    };
  }

  private complete(op: Operation, response: reapi.ExecuteResponse): void {
    if (op.done) return;
    const job = op.job;
    job?.ops.delete(op);
    op.job = undefined;
    if (job) this.attentionChanged(job);
    op.stage = 'COMPLETED';
    op.done = true;
    op.response = response;
    this.notify(op);
    op.watchers.clear();
    op.expiry = this.clock.setTimeout(() => {
      if (this.operations.get(op.name) === op) this.operations.delete(op.name);
    }, this.opts.operationRetentionMs);
  }

  private notify(op: Operation): void {
    if (op.watchers.size === 0) return;
    const snap = this.snapshot(op);
    for (const w of [...op.watchers]) safeNotify(w, snap);
  }

  private snapshot(op: Operation): OperationSnapshot {
    return {
      name: op.name,
      id: op.id,
      seq: op.seq,
      jobId: op.jobId,
      instance: op.instance,
      actionDigest: op.actionDigest,
      stage: op.stage,
      done: op.done,
      queuedAt: op.queuedAt,
      streamNames: op.streamNames,
      response: op.response,
      inline: { stdout: op.inlineStdout, stderr: op.inlineStderr },
    };
  }
}

function dedupKey(instance: string, d: BlobDigest): string {
  return `${instance}\u0000${digestKey(d)}`;
}

function safeNotify(listener: OperationListener, op: OperationSnapshot): void {
  try {
    listener(op);
  } catch (err) {
    // One broken watcher (a closed stream) must not stop the others or the run.
    console.error(`kiln: operation watcher failed on ${op.name}:`, err);
  }
}

function waitAtMost(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void p.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
