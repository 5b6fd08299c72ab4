// Execution service. Execute validates the request, answers action cache hits
// at once, and otherwise hands the action to the scheduler and streams its
// operation (QUEUED → EXECUTING → COMPLETED; an action over within
// stageUpdateHoldMs sends COMPLETED alone). Problems found before the action
// is queued are gRPC errors; problems of the run arrive in ExecuteResponse.status.
// WaitExecution re-attaches to an operation by name. Inlining stdout/stderr
// into the final response is done here, per caller.
import * as grpc from '@grpc/grpc-js';
import { systemClock, type Clock } from '../clock';
import { formatDigest, type BlobDigest } from '../digest';
import { nullSink, type EventSink } from '../events/event-bus';
import { isForwarded, requestMetadataOf } from '../grpc/services';
import { GrpcError, invalidArgument, missingBlobs, notFound, statusOk, toServiceError, unavailable } from '../grpc/status';
import { longrunning, msFromDuration, reapi } from '../proto';
import type { Executor } from '../execution/executor';
import { effectivePlatform } from '../execution/platform';
import { toOperation, type OperationSnapshot } from '../scheduler/operation';
import { EXECUTION_PAUSED_MESSAGE, type Scheduler } from '../scheduler/scheduler';
import type { ActionCacheStore } from '../store/action-cache-store';
import { BlobNotFoundError, type BlobStore } from '../store/blob-store';
import { isActionResultComplete } from './action-cache';
import { requestDigest, requestDigestFunction, validateInstanceName } from './resource-names';

export interface ExecutionServiceOptions {
  scheduler: Scheduler;
  store: BlobStore;
  actionCache: Pick<ActionCacheStore, 'get'>;
  defaultActionTimeoutMs: number;
  maxActionTimeoutMs: number;
  /** Asked, once per Execute, to reject commands it cannot run safely (output paths escaping the working directory…). */
  executor: Pick<Executor, 'validateCommand'>;
  events?: EventSink;
  clock?: Clock;
  /** See DEFAULT_STAGE_UPDATE_HOLD_MS; 0 sends every stage at once. */
  stageUpdateHoldMs?: number;
}

/**
 * How long Execute holds a stage update (QUEUED, EXECUTING) before sending it,
 * sending only the latest: an action done by then answers with its result
 * alone. Most of a build's actions are that short, and each update is a
 * message the server encodes and writes and Bazel reads and decodes, for
 * nothing (REAPI lets a server send as few updates as it likes). A longer
 * action's client still learns it is executing, and its live log streams,
 * this much later. WaitExecution sends the current state at once.
 */
export const DEFAULT_STAGE_UPDATE_HOLD_MS = 20;

export function createExecutionService(opts: ExecutionServiceOptions): grpc.UntypedServiceImplementation {
  const { scheduler } = opts;
  const events = opts.events ?? nullSink;
  const clock = opts.clock ?? systemClock;

  return {
    async execute(call: grpc.ServerWritableStream<reapi.ExecuteRequest, longrunning.Operation>) {
      let op: OperationSnapshot;
      try {
        const req = call.request;
        validateInstanceName(req.instanceName);
        const fn = requestDigestFunction(req.digestFunction);
        const actionDigest = requestDigest(req.actionDigest, fn, 'action_digest');
        if (!scheduler.enabled) {
          // The health monitor names "execution off while Bazel waits" from these.
          events.emit({ type: 'execution.refused', at: clock.now(), reason: 'off' });
          throw unavailable(EXECUTION_PAUSED_MESSAGE);
        }
        const meta = requestMetadataOf(call.metadata);

        if (!req.skipCacheLookup) {
          const cached = await opts.actionCache.get(req.instanceName, actionDigest);
          const hit = cached !== undefined && (await isActionResultComplete(opts.store, cached, fn.name));
          events.emit({ type: 'cache.lookup', at: clock.now(), store: 'ac', hit, instance: req.instanceName });
          if (hit) {
            const response = reapi.ExecuteResponse.create({ result: cached, cachedResult: true, status: statusOk() });
            op = scheduler.recordCompleted(req.instanceName, actionDigest, response, meta);
            return await stream(call, scheduler, opts.store, op.name);
          }
        }

        // A full queue refuses before the CAS is read: a burst of calls it cannot take costs little.
        const refusal = scheduler.refusalWhenFull(req.instanceName, actionDigest);
        if (refusal) throw refusal;

        const action = await readMessage(opts.store, actionDigest, (b) => reapi.Action.decode(b), 'Action');
        const commandDigest = requestDigest(action.commandDigest, fn, 'action.command_digest');
        const inputRoot = requestDigest(action.inputRootDigest, fn, 'action.input_root_digest');
        const missing = await opts.store.findMissing([commandDigest, inputRoot]);
        if (missing.length > 0) throw missingBlobs(missing, 'Command or input root');
        const command = await readMessage(opts.store, commandDigest, (b) => reapi.Command.decode(b), 'Command');
        if (!command.arguments?.length) throw invalidArgument('the Command has no arguments; nothing to run', 'command.arguments');
        const platform = effectivePlatform(action, command);
        const effective = reapi.Command.create({ ...command, platform: platform ?? undefined });
        opts.executor.validateCommand(effective);

        op = scheduler.submit({
          instance: req.instanceName,
          actionDigest,
          action,
          command: effective,
          timeoutMs: timeoutOf(action, opts),
          priority: req.executionPolicy?.priority ?? 0,
          inlineStdout: req.inlineStdout,
          inlineStderr: req.inlineStderr,
          requestMetadata: meta,
          forwarded: isForwarded(call.metadata),
        });
      } catch (err) {
        call.emit('error', toServiceError(err));
        return;
      }
      await stream(call, scheduler, opts.store, op.name, op, opts.stageUpdateHoldMs ?? DEFAULT_STAGE_UPDATE_HOLD_MS);
    },

    async waitExecution(call: grpc.ServerWritableStream<reapi.WaitExecutionRequest, longrunning.Operation>) {
      try {
        await stream(call, scheduler, opts.store, call.request.name);
      } catch (err) {
        call.emit('error', toServiceError(err));
      }
    },
  };
}

/** NOT_FOUND in the words a client needs: execute again. */
export function unknownOperation(name: string): GrpcError {
  return notFound(`operation "${name}" is unknown or expired; call Execute again`);
}

/**
 * Writes the operation's current state, then every change, and ends the call
 * when it is done. A caller that goes away only stops watching: the action runs on.
 * With `holdMs`, a state that is not the last waits that long, and only the
 * latest is written then (see DEFAULT_STAGE_UPDATE_HOLD_MS).
 */
function stream(
  call: grpc.ServerWritableStream<unknown, longrunning.Operation>,
  scheduler: Scheduler,
  store: Pick<BlobStore, 'readAll'>,
  name: string,
  accepted?: OperationSnapshot,
  holdMs = 0,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let finished = false;
    let sent: OperationSnapshot | undefined;
    const send = (op: OperationSnapshot) => {
      // The same stage twice says nothing new (the accepted state, then the watch's first call).
      if (sent && sent.stage === op.stage && sent.done === op.done && sent.streamNames === op.streamNames) return;
      sent = op;
      call.write(toOperation(op));
    };
    // Every way the stream ends drops what is held, timer and all.
    let held: OperationSnapshot | undefined;
    let holdTimer: NodeJS.Timeout | undefined;
    const dropHeld = () => {
      clearTimeout(holdTimer);
      holdTimer = undefined;
      held = undefined;
    };
    const update = (op: OperationSnapshot) => {
      if (holdMs <= 0) return send(op);
      held = op;
      holdTimer ??= setTimeout(() => {
        const latest = held!;
        dropHeld();
        send(latest);
      }, holdMs);
    };
    // The response headers go at once: only the messages wait, and the answer's path stays as short as it was.
    if (holdMs > 0 && accepted) call.sendMetadata(new grpc.Metadata());
    if (accepted) update(accepted);
    let unsubscribe: (() => void) | undefined;
    const stop = () => {
      if (finished) return;
      finished = true;
      dropHeld();
      unsubscribe?.();
      resolve();
    };
    call.on('cancelled', stop);
    call.on('close', stop);
    unsubscribe = scheduler.watch(name, (op) => {
      if (finished) return;
      if (!op.done) return update(op);
      // The last message: inlining reads the store, so the stream ends once it is written.
      finished = true;
      dropHeld();
      unsubscribe?.();
      void withInlinedLogs(store, op).then((final) => {
        call.write(toOperation(final));
        call.end();
        resolve();
      });
    });
    if (!unsubscribe) {
      dropHeld();
      reject(unknownOperation(name));
    } else if (finished) unsubscribe();
  });
}

/** stdout/stderr beyond this are left for the client to download. */
const MAX_INLINE_BYTES = 1024 * 1024;

/** The operation with stdout/stderr inlined where its caller asked and they are small. */
async function withInlinedLogs(store: Pick<BlobStore, 'readAll'>, op: OperationSnapshot): Promise<OperationSnapshot> {
  const result = op.response?.result;
  if (!op.response || !result || (!op.inline?.stdout && !op.inline?.stderr)) return op;
  const read = async (d: reapi.Digest.$Properties | null | undefined): Promise<Uint8Array> => {
    const size = Number(d?.sizeBytes ?? 0);
    if (!d?.hash || size > MAX_INLINE_BYTES) return new Uint8Array();
    try {
      return await store.readAll({ fn: op.actionDigest.fn, hash: d.hash, size });
    } catch {
      return new Uint8Array(); // The digest is still there; the client downloads it.
    }
  };
  const inlined = reapi.ActionResult.create({ ...result });
  if (op.inline.stdout) inlined.stdoutRaw = await read(result.stdoutDigest);
  if (op.inline.stderr) inlined.stderrRaw = await read(result.stderrDigest);
  return { ...op, response: reapi.ExecuteResponse.create({ ...op.response, result: inlined }) };
}

async function readMessage<T>(store: BlobStore, digest: BlobDigest, decode: (bytes: Uint8Array) => T, what: string): Promise<T> {
  let bytes: Buffer;
  try {
    bytes = await store.readAll(digest);
  } catch (err) {
    if (err instanceof BlobNotFoundError) throw missingBlobs([digest], what);
    throw err;
  }
  try {
    return decode(bytes);
  } catch (err) {
    throw invalidArgument(`blob ${formatDigest(digest)} is not a valid ${what} message: ${(err as Error).message}`);
  }
}

/** The action's timeout, or the configured default; above the maximum or negative is refused. */
export function timeoutOf(action: reapi.Action, limits: { defaultActionTimeoutMs: number; maxActionTimeoutMs: number }): number {
  const ms = msFromDuration(action.timeout);
  if (ms === undefined || ms === 0) return limits.defaultActionTimeoutMs;
  if (ms < 0 || !Number.isFinite(ms)) throw invalidArgument(`action timeout ${ms} ms is negative`, 'action.timeout');
  if (ms > limits.maxActionTimeoutMs) {
    throw invalidArgument(
      `action timeout ${ms / 1000} s exceeds this Kiln's maximum of ${limits.maxActionTimeoutMs / 1000} s; ` +
        'lower the timeout or raise maxActionTimeoutMs in the Kiln configuration',
      'action.timeout',
    );
  }
  return ms;
}

