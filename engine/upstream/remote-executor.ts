// Runs an action on the upstream's Execution service instead of this machine:
// upload what the upstream lacks from the local CAS, Execute and relay the
// stages, then bring the outputs and logs back into the local CAS so the local
// cache serves them next time. An unreachable upstream rejects with
// UpstreamUnreachableError, which the placement executor answers by running
// the action locally.
import { DIGEST_FUNCTIONS, digestKey, isEmptyBlob, toBlobDigest, type BlobDigest } from '../digest';
import { GrpcError, Status } from '../grpc/status';
import { reapi, rpc, unpackAny } from '../proto';
import type { BlobStore } from '../store/blob-store';
import type { ExecutionHooks, ExecutionOutcome, ExecutionTimings, Executor, ExecutorCapacity, PreparedAction } from '../execution/executor';
import type { Clock } from '../clock';
import { inputDigest, planInputTree } from '../worker/input-tree';
import { copyResultBlobs } from './result-blobs';
import { UpstreamDeadlineError, UpstreamUnreachableError, type UpstreamClient } from './upstream-client';

export interface RemoteExecutorOptions {
  upstream: UpstreamClient;
  /** The local CAS: inputs come from it, outputs go into it. */
  store: BlobStore;
  clock: Clock;
  /** Actions it sends upstream at once. */
  slots: number;
}

/** Time the upstream gets beyond the action's own timeout (queueing there, uploads). */
const DEADLINE_GRACE_MS = 5 * 60_000;

export class RemoteExecutor implements Executor {
  constructor(private readonly opts: RemoteExecutorOptions) {}

  /** The local executor's checks apply: the action may fall back to it. */
  validateCommand(): void {}

  capacity(): ExecutorCapacity {
    const { reachable, problem } = this.opts.upstream.status();
    return reachable === false
      ? { slots: this.opts.slots, ready: false, reason: `upstream ${this.opts.upstream.url} is unreachable: ${problem}` }
      : { slots: this.opts.slots, ready: true };
  }

  async run(action: PreparedAction, signal: AbortSignal, hooks: ExecutionHooks = {}): Promise<ExecutionOutcome> {
    const { upstream, store, clock } = this.opts;
    const now = () => clock.now();
    const t: Partial<ExecutionTimings> = { workerStart: now() };
    t.inputFetchStart = now();
    hooks.onStage?.('fetching-inputs', t.inputFetchStart);
    const fn = DIGEST_FUNCTIONS[action.actionDigest.fn];
    const plan = await planInputTree(store, inputDigest(action.action.inputRootDigest, fn, 'input_root_digest'));
    hooks.onInputs?.(plan.files.length, plan.totalBytes);
    const needed = unique([action.actionDigest, inputDigest(action.action.commandDigest, fn, 'command_digest'), ...plan.blobs]);
    await this.uploadMissing(needed);
    t.inputFetchCompleted = now();

    t.executionStart = now();
    hooks.onStage?.('running', t.executionStart);
    let response: reapi.ExecuteResponse;
    try {
      response = await this.execute(action, signal);
    } catch (err) {
      if (signal.aborted) return this.cancelled(t, plan.files.length, plan.totalBytes);
      if (err instanceof UpstreamDeadlineError) return this.unfinished('timeout', t, plan.files.length, plan.totalBytes);
      // Bazel's own FAILED_PRECONDITION dance: upload what the upstream says it lacks, and try once more.
      const missing = missingFrom(err, fn);
      if (!missing) throw err;
      await upstream.upload(store, missing);
      response = await this.execute(action, signal);
    }
    t.executionCompleted = now();

    const status = response.status ?? rpc.Status.create();
    if (!signal.aborted && (status.code === Status.CANCELLED || status.code === Status.UNAVAILABLE)) {
      // The upstream gave up on the run (its shutdown, a lost worker), not the action: it may run elsewhere.
      throw new UpstreamUnreachableError(upstream.url, `it stopped the action: ${status.message}`);
    }
    if (status.code && status.code !== Status.DEADLINE_EXCEEDED) {
      throw new GrpcError(status.code, `upstream ${upstream.url}: ${status.message}`);
    }
    t.outputUploadStart = now();
    hooks.onStage?.('uploading-outputs', t.outputUploadStart);
    const result = reapi.ActionResult.create(response.result ?? {});
    const outputs = await copyResultBlobs(upstream, store, result, fn);
    await this.relayLogs(action, result, fn);
    t.outputUploadCompleted = now();
    t.workerCompleted = now();
    return {
      result,
      status: status.code === Status.DEADLINE_EXCEEDED ? 'timeout' : 'ok',
      timings: t as ExecutionTimings,
      worker: result.executionMetadata?.worker || upstream.url,
      inputFiles: plan.files.length,
      inputBytes: plan.totalBytes,
      outputs,
      // The upstream decided whether it caches; we cache what it ran as we would our own.
      cacheable: true,
      ranOn: 'upstream',
    };
  }

  async close(): Promise<void> {}

  private async uploadMissing(needed: BlobDigest[]): Promise<void> {
    const missing = await this.opts.upstream.findMissing(needed.filter((d) => !isEmptyBlob(d)));
    await this.opts.upstream.upload(this.opts.store, missing);
  }

  private async execute(action: PreparedAction, signal: AbortSignal): Promise<reapi.ExecuteResponse> {
    const op = await this.opts.upstream.execute(action.actionDigest, {
      signal,
      deadlineMs: action.timeoutMs + DEADLINE_GRACE_MS,
    });
    if (op.error) throw new GrpcError(op.error.code ?? Status.UNKNOWN, `upstream ${this.opts.upstream.url}: ${op.error.message}`, (op.error.details ?? []) as never);
    const response = unpackAny(reapi.ExecuteResponse, op.response as never) as reapi.ExecuteResponse | undefined;
    if (!response) throw new UpstreamUnreachableError(this.opts.upstream.url, 'the finished operation carried no ExecuteResponse');
    return response;
  }

  /** The run's stdout/stderr into the action's log sinks, so the dashboard and LogStream readers see them. */
  private async relayLogs(action: PreparedAction, result: reapi.ActionResult, fn: (typeof DIGEST_FUNCTIONS)[keyof typeof DIGEST_FUNCTIONS]): Promise<void> {
    const pairs = [
      [action.logs.stdout, result.stdoutRaw, result.stdoutDigest],
      [action.logs.stderr, result.stderrRaw, result.stderrDigest],
    ] as const;
    for (const [sink, raw, digest] of pairs) {
      if (raw?.length) await sink.write(raw);
      else if (digest?.hash && Number(digest.sizeBytes) > 0) {
        for await (const chunk of await this.opts.store.read(toBlobDigest(digest, fn))) await sink.write(chunk as Buffer);
      }
      await sink.end();
    }
  }

  private cancelled(t: Partial<ExecutionTimings>, inputFiles: number, inputBytes: number): ExecutionOutcome {
    return this.unfinished('cancelled', t, inputFiles, inputBytes);
  }

  private unfinished(status: 'cancelled' | 'timeout', t: Partial<ExecutionTimings>, inputFiles: number, inputBytes: number): ExecutionOutcome {
    const at = this.opts.clock.now();
    return {
      result: reapi.ActionResult.create({}),
      status,
      timings: { ...t, executionCompleted: at, outputUploadStart: at, outputUploadCompleted: at, workerCompleted: at } as ExecutionTimings,
      inputFiles,
      inputBytes,
      outputs: [],
      cacheable: false,
      notCacheableReason: status,
      ranOn: 'upstream',
    };
  }
}

/** The blobs a FAILED_PRECONDITION names as MISSING, or undefined for any other error. */
function missingFrom(err: unknown, fn: (typeof DIGEST_FUNCTIONS)[keyof typeof DIGEST_FUNCTIONS]): BlobDigest[] | undefined {
  const e = err as { code?: number; metadata?: { get(k: string): unknown[] } };
  if (e.code !== Status.FAILED_PRECONDITION || !e.metadata) return undefined;
  const [bin] = e.metadata.get('grpc-status-details-bin');
  if (!(bin instanceof Buffer)) return undefined;
  const out: BlobDigest[] = [];
  for (const any of rpc.Status.decode(bin).details) {
    const pf = unpackAny(rpc.PreconditionFailure, any as never) as rpc.PreconditionFailure | undefined;
    for (const v of pf?.violations ?? []) {
      const m = v.type === 'MISSING' ? /blobs\/(?:[a-z0-9]+\/)?([0-9a-f]+)\/(\d+)$/.exec(v.subject ?? '') : null;
      if (m) out.push({ fn: fn.name, hash: m[1]!, size: Number(m[2]) });
    }
  }
  return out.length ? out : undefined;
}

function unique(digests: BlobDigest[]): BlobDigest[] {
  const seen = new Map<string, BlobDigest>();
  for (const d of digests) seen.set(digestKey(d), d);
  return [...seen.values()];
}

