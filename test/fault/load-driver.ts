// Load for the fault suite's load run and the bench's soak mode: Execute calls on
// many connections of their own, a prober timing cheap calls on another, and the
// percentiles they report. Everything speaks plain REAPI to a `kiln serve`.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { digestOf, toWireDigest, type BlobDigest } from '../../engine/digest';
import { ActionCacheService, CapabilitiesService, ExecutionService } from '../../engine/grpc/services';
import { encode, longrunning, reapi } from '../../engine/proto';
import { grpc, type KilnClients } from '../helpers';

/** Resident set of `pid` in bytes, from /proc. */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** The q-quantile (0..1) of `values` (nearest rank); NaN when empty. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export const ms = (v: number) => `${v.toFixed(1)} ms`;

/** A grpc-js client on a connection of its own (grpc-js otherwise shares one per target). */
export function ownConnection(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

/**
 * Uploads `count` distinct actions running `argv` (each with its own env value, so
 * none is deduplicated or cached) and returns their encoded ExecuteRequests.
 */
export async function prepareActions(c: KilnClients, count: number, argv: string[]): Promise<Buffer[]> {
  const emptyDir = await digestOf(Buffer.alloc(0));
  const run = randomBytes(6).toString('hex');
  const requests: Buffer[] = [];
  let batch: { digest: ReturnType<typeof toWireDigest>; data: Buffer }[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const res = await c.cas.batchUpdate({ requests: batch });
    const bad = res.responses.find((r) => (r.status?.code ?? 0) !== 0);
    if (bad) throw new Error(`upload of load actions failed: ${bad.status?.message}`);
    batch = [];
    batchBytes = 0;
  };
  const add = async (data: Buffer): Promise<BlobDigest> => {
    const digest = await digestOf(data);
    batch.push({ digest: toWireDigest(digest), data });
    batchBytes += data.length;
    if (batchBytes > 1024 * 1024) await flush();
    return digest;
  };
  for (let i = 0; i < count; i++) {
    const command = encode(
      reapi.Command,
      reapi.Command.create({
        arguments: argv,
        environmentVariables: [
          { name: 'KILN_LOAD', value: `${run}-${i}` },
          { name: 'PATH', value: process.env.PATH ?? '/usr/bin:/bin' },
        ],
      }),
    );
    const commandDigest = await add(command);
    const action = encode(
      reapi.Action,
      reapi.Action.create({ commandDigest: toWireDigest(commandDigest), inputRootDigest: toWireDigest(emptyDir), doNotCache: true }),
    );
    const actionDigest = await add(action);
    requests.push(encode(reapi.ExecuteRequest, reapi.ExecuteRequest.create({ actionDigest: toWireDigest(actionDigest), skipCacheLookup: true })));
  }
  await flush();
  return requests;
}

export interface ExecuteOutcome {
  /** gRPC status of the call (0 when the stream ended normally). */
  code: number;
  details: string;
  /** ms from the call to its first Operation message (undefined when none came). */
  firstMessageMs?: number;
  /** ms from the call to its end. */
  totalMs: number;
  /** The operation's name, from its first message. */
  operation?: string;
}

const identity = (b: Buffer) => b;

/** One Execute call with an encoded request; resolves when its stream ends. */
export function executeRaw(
  client: grpc.Client,
  request: Buffer,
  deadlineMs = 600_000,
): { done: Promise<ExecuteOutcome>; cancel(): void; operation(): string | undefined } {
  const started = performance.now();
  let firstMessageMs: number | undefined;
  let operation: string | undefined;
  const call = client.makeServerStreamRequest(ExecutionService.execute.path, identity, identity, request, new grpc.Metadata(), {
    deadline: Date.now() + deadlineMs,
  });
  const done = new Promise<ExecuteOutcome>((resolve) => {
    call.on('data', (m: Buffer) => {
      if (firstMessageMs === undefined) {
        firstMessageMs = performance.now() - started;
        operation = longrunning.Operation.decode(m).name;
      }
    });
    const end = (code: number, details: string) => resolve({ code, details, firstMessageMs, totalMs: performance.now() - started, operation });
    call.on('error', (e: grpc.ServiceError) => end(e.code, e.details));
    call.on('end', () => end(0, ''));
  });
  return { done, cancel: () => call.cancel(), operation: () => operation };
}

/** Latencies of cheap calls, taken one after another on a connection of its own. */
export class CheapCallProbe {
  readonly capabilities: number[] = [];
  readonly actionResult: number[] = [];
  private running = false;
  private loop?: Promise<void>;
  private readonly client: grpc.Client;

  constructor(
    address: string,
    /** An action digest GetActionResult is asked for (a hit or a miss: both must be cheap). */
    private readonly actionDigest: BlobDigest,
    /** Pause between probes. */
    private readonly everyMs = 10,
  ) {
    this.client = ownConnection(address);
  }

  start(): void {
    this.running = true;
    const caps = encode(reapi.GetCapabilitiesRequest, reapi.GetCapabilitiesRequest.create({}));
    const ac = encode(reapi.GetActionResultRequest, reapi.GetActionResultRequest.create({ actionDigest: toWireDigest(this.actionDigest) }));
    this.loop = (async () => {
      while (this.running) {
        this.capabilities.push(await this.time(CapabilitiesService.getCapabilities.path, caps));
        this.actionResult.push(await this.time(ActionCacheService.getActionResult.path, ac));
        await new Promise((r) => setTimeout(r, this.everyMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Takes the samples so far (and starts a new window). */
  drain(): { capabilities: number[]; actionResult: number[] } {
    return { capabilities: this.capabilities.splice(0), actionResult: this.actionResult.splice(0) };
  }

  close(): void {
    this.client.close();
  }

  /** ms for one unary call; any answer counts (NOT_FOUND for a miss is an answer). */
  private time(path: string, request: Buffer): Promise<number> {
    const started = performance.now();
    return new Promise((resolve) =>
      this.client.makeUnaryRequest(path, identity, identity, request, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, () =>
        resolve(performance.now() - started),
      ),
    );
  }
}
