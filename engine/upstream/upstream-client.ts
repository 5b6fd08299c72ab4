// The one connection Kiln keeps to an upstream REAPI server (Buildbarn,
// BuildBuddy, another Kiln…): the CAS, ByteStream, action cache and Execution
// calls the remote executor and the read/write-through store need, with the
// configured instance name and headers on every call. It also remembers whether
// the upstream answered lately, for /api/status and the placement policy.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { DIGEST_FUNCTIONS, toBlobDigest, toWireDigest, type BlobDigest } from '../digest';
import { clients, REQUEST_METADATA_HEADER } from '../grpc/services';
import { bytestream, encode, longrunning, reapi } from '../proto';
import { blobResourceName, uploadResourceName } from '../reapi/resource-names';
import type { BlobStore } from '../store/blob-store';

export interface UpstreamOptions {
  /** grpc://HOST:PORT or grpcs://HOST:PORT */
  url: string;
  instance?: string;
  headers?: Record<string, string>;
  /** PEM of the CA the upstream's certificate must chain to (grpcs only); the system's roots otherwise. */
  tlsCa?: Buffer;
  /** How often to check that the upstream answers (GetCapabilities); 0: never. */
  probeIntervalMs?: number;
  clock?: { now(): number };
}

export interface UpstreamHealth {
  url: string;
  /** Undefined until the first call answered or failed. */
  reachable?: boolean;
  /** Why the last call failed, in words a person can act on. */
  problem?: string;
  /** When `reachable` last changed. */
  since?: number;
  /** How long the last reachability check (GetCapabilities) took. */
  roundTripMs?: number;
}

/** Blobs up to this size travel in BatchUpdateBlobs; larger ones through ByteStream. */
const BATCH_BLOB_LIMIT = 1024 * 1024;
/** Total bytes of one BatchUpdateBlobs request (the REAPI default limit is 4 MiB). */
const BATCH_TOTAL_LIMIT = 2 * 1024 * 1024;
const CHUNK = 1024 * 1024;
/** A cache lookup sits in front of every Execute: an upstream slower than this counts as down. */
const LOOKUP_DEADLINE_MS = 10_000;
/** Unary calls that take longer than this count as the upstream being unreachable. */
const UNARY_DEADLINE_MS = 60_000;
/** How long a cancelled Execute waits for the upstream's first message, which names the operation to cancel there. */
const CANCEL_NAME_WAIT_MS = 1_000;
const CLIENT_OPTIONS: grpc.ClientOptions = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
};

/** The upstream could not be reached (connection refused, DNS, TLS, deadline): not a verdict on the action. */
export class UpstreamUnreachableError extends Error {
  constructor(readonly url: string, cause: string) {
    super(`upstream ${url} is unreachable: ${cause}`);
  }
}

const UNUSABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED]);

/** The Execute call outlived the action's timeout plus grace. */
export class UpstreamDeadlineError extends Error {}

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;

export function loadUpstreamCa(file: string | undefined): Buffer | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`upstream-tls-ca: cannot read ${file}: ${(err as Error).message}`);
  }
}

export class UpstreamClient {
  readonly url: string;
  readonly instance: string;
  private readonly raw: Record<keyof typeof clients, grpc.Client>;
  private readonly headers: Record<string, string>;
  private health: UpstreamHealth;
  private probe?: NodeJS.Timeout;
  private readonly clock: { now(): number };
  private readonly requestMetadata = encode(
    reapi.RequestMetadata,
    reapi.RequestMetadata.create({ toolDetails: { toolName: 'kiln' }, toolInvocationId: randomUUID() }),
  );

  constructor(opts: UpstreamOptions) {
    const m = /^(grpcs?):\/\/(.+)$/.exec(opts.url);
    if (!m) throw new Error(`upstream "${opts.url}" is not grpc://HOST:PORT or grpcs://HOST:PORT`);
    this.url = opts.url;
    this.instance = opts.instance ?? '';
    this.headers = opts.headers ?? {};
    this.clock = opts.clock ?? Date;
    this.health = { url: opts.url };
    const credentials = m[1] === 'grpcs' ? grpc.credentials.createSsl(opts.tlsCa ?? null) : grpc.credentials.createInsecure();
    this.raw = Object.fromEntries(
      Object.entries(clients).map(([name, Ctor]) => [name, new Ctor(m[2]!, credentials, CLIENT_OPTIONS)]),
    ) as unknown as Record<keyof typeof clients, grpc.Client>;
    if (opts.probeIntervalMs) {
      this.probe = setInterval(() => void this.checkReachable(), opts.probeIntervalMs);
      this.probe.unref();
      void this.checkReachable();
    }
  }

  /** Whether the upstream answered lately, and if not, why. */
  status(): UpstreamHealth {
    return { ...this.health };
  }

  /** True unless the last call found the upstream unreachable. */
  get reachable(): boolean {
    return this.health.reachable !== false;
  }

  async checkReachable(): Promise<boolean> {
    const started = performance.now();
    try {
      await this.unary<reapi.GetCapabilitiesRequest.$Properties, reapi.ServerCapabilities>('Capabilities', 'getCapabilities', {
        instanceName: this.instance,
      }, 10_000);
      this.health.roundTripMs = Math.round(performance.now() - started);
      return true;
    } catch {
      return false;
    }
  }

  async findMissing(digests: BlobDigest[]): Promise<BlobDigest[]> {
    if (digests.length === 0) return [];
    const missing: BlobDigest[] = [];
    const fn = digests[0]!.fn;
    for (let at = 0; at < digests.length; at += 10_000) {
      const res = await this.unary<reapi.FindMissingBlobsRequest.$Properties, reapi.FindMissingBlobsResponse>(
        'ContentAddressableStorage',
        'findMissingBlobs',
        {
          instanceName: this.instance,
          digestFunction: DIGEST_FUNCTIONS[fn].value,
          blobDigests: digests.slice(at, at + 10_000).map(toWireDigest),
        },
      );
      for (const d of res.missingBlobDigests) missing.push(toBlobDigest(d, DIGEST_FUNCTIONS[fn]));
    }
    return missing;
  }

  /** Copies `digests` from `store` to the upstream: small ones batched, large ones streamed. */
  async upload(store: BlobStore, digests: BlobDigest[]): Promise<void> {
    const small = digests.filter((d) => d.size <= BATCH_BLOB_LIMIT);
    const large = digests.filter((d) => d.size > BATCH_BLOB_LIMIT);
    let batch: BlobDigest[] = [];
    let bytes = 0;
    for (const d of small) {
      if (bytes + d.size > BATCH_TOTAL_LIMIT && batch.length) {
        await this.batchUpload(store, batch);
        batch = [];
        bytes = 0;
      }
      batch.push(d);
      bytes += d.size;
    }
    if (batch.length) await this.batchUpload(store, batch);
    for (const d of large) await this.streamUpload(store, d);
  }

  /** The blob's bytes from the upstream, streamed. Rejects (NOT_FOUND, unreachable) before the first byte. */
  read(digest: BlobDigest): Readable {
    const call = (this.raw.ByteStream as unknown as {
      read(req: bytestream.ReadRequest.$Properties, md: grpc.Metadata): grpc.ClientReadableStream<bytestream.ReadResponse>;
    }).read({ resourceName: blobResourceName(this.instance, digest), readOffset: 0, readLimit: 0 }, this.metadata());
    const out = new Readable({ read() {} });
    call.on('data', (m: bytestream.ReadResponse) => {
      this.answered();
      out.push(Buffer.from(m.data));
    });
    call.on('error', (err: grpc.ServiceError) => out.destroy(this.translate(err)));
    call.on('end', () => out.push(null));
    out.on('close', () => call.cancel());
    return out;
  }

  /** Copies a blob from the upstream into `store` (verified there while it streams). */
  async download(store: BlobStore, digest: BlobDigest): Promise<void> {
    await store.write(digest, this.read(digest));
  }

  async getActionResult(actionDigest: BlobDigest): Promise<reapi.ActionResult | undefined> {
    try {
      return await this.unary<reapi.GetActionResultRequest.$Properties, reapi.ActionResult>('ActionCache', 'getActionResult', {
        instanceName: this.instance,
        digestFunction: DIGEST_FUNCTIONS[actionDigest.fn].value,
        actionDigest: toWireDigest(actionDigest),
        inlineStdout: false,
        inlineStderr: false,
      }, LOOKUP_DEADLINE_MS);
    } catch (err) {
      if ((err as grpc.ServiceError).code === grpc.status.NOT_FOUND) return undefined;
      throw err;
    }
  }

  async updateActionResult(actionDigest: BlobDigest, result: reapi.IActionResult): Promise<void> {
    await this.unary<reapi.UpdateActionResultRequest.$Properties, reapi.ActionResult>('ActionCache', 'updateActionResult', {
      instanceName: this.instance,
      digestFunction: DIGEST_FUNCTIONS[actionDigest.fn].value,
      actionDigest: toWireDigest(actionDigest),
      actionResult: reapi.ActionResult.create(result),
    }, UNARY_DEADLINE_MS, true);
  }

  /**
   * Starts Execute on the upstream. Each Operation goes to `onOperation`; resolves
   * with the last one (done) or rejects with the call's error. Aborting `signal`
   * cancels the call.
   */
  execute(
    actionDigest: BlobDigest,
    opts: { signal: AbortSignal; deadlineMs: number; skipCacheLookup?: boolean; onOperation?: (op: longrunning.Operation) => void },
  ): Promise<longrunning.Operation> {
    const call = (this.raw.Execution as unknown as {
      execute(req: reapi.ExecuteRequest.$Properties, md: grpc.Metadata, o: grpc.CallOptions): grpc.ClientReadableStream<longrunning.Operation>;
    }).execute(
      {
        instanceName: this.instance,
        actionDigest: toWireDigest(actionDigest),
        skipCacheLookup: opts.skipCacheLookup ?? false,
        digestFunction: DIGEST_FUNCTIONS[actionDigest.fn].value,
      },
      this.metadata(),
      { deadline: Date.now() + opts.deadlineMs },
    );
    return new Promise((resolve, reject) => {
      let last: longrunning.Operation | undefined;
      let nameWaitTimer: NodeJS.Timeout | undefined;
      const cancelBoth = () => {
        clearTimeout(nameWaitTimer);
        call.cancel();
        // Closing our stream may leave it running there; ask the upstream to stop it too.
        if (last?.name) void this.cancelOperation(last.name);
      };
      const abort = () => {
        if (last?.name) return cancelBoth();
        // No operation name yet: a server may hold its first message (Kiln does, for a few ms);
        // the stream stays open a little while for it, so the run there can be cancelled by name.
        nameWaitTimer = setTimeout(cancelBoth, CANCEL_NAME_WAIT_MS);
      };
      opts.signal.addEventListener('abort', abort, { once: true });
      call.on('data', (op: longrunning.Operation) => {
        this.answered();
        last = op;
        if (opts.signal.aborted) return cancelBoth();
        opts.onOperation?.(op);
      });
      call.on('error', (err: grpc.ServiceError) => {
        clearTimeout(nameWaitTimer);
        opts.signal.removeEventListener('abort', abort);
        // Our own deadline (the action's timeout plus grace) passed: the action timed out, the upstream is fine.
        if (err.code === grpc.status.DEADLINE_EXCEEDED) return reject(new UpstreamDeadlineError(`upstream ${this.url} did not finish the action in time`));
        // Cancelled without our asking: the upstream dropped the call (shutting down, restarting).
        if (err.code === grpc.status.CANCELLED && !opts.signal.aborted) {
          return reject(new UpstreamUnreachableError(this.url, `it dropped the Execute call (${err.details})`));
        }
        reject(this.translate(err));
      });
      call.on('end', () => {
        clearTimeout(nameWaitTimer);
        opts.signal.removeEventListener('abort', abort);
        if (last?.done) resolve(last);
        else reject(new UpstreamUnreachableError(this.url, 'the Execute stream ended before the operation was done'));
      });
    });
  }

  /** Best effort: the operation may already be done, or the upstream may not allow it. */
  async cancelOperation(name: string): Promise<void> {
    await this.unary<longrunning.CancelOperationRequest.$Properties, unknown>('Operations', 'cancelOperation', { name }, 10_000).catch(() => {});
  }

  close(): void {
    if (this.probe) clearInterval(this.probe);
    for (const c of Object.values(this.raw)) c.close();
  }

  private async batchUpload(store: BlobStore, digests: BlobDigest[]): Promise<void> {
    const fn = digests[0]!.fn;
    const requests = await Promise.all(digests.map(async (d) => ({ digest: toWireDigest(d), data: await store.readAll(d) })));
    const res = await this.unary<reapi.BatchUpdateBlobsRequest.$Properties, reapi.BatchUpdateBlobsResponse>(
      'ContentAddressableStorage',
      'batchUpdateBlobs',
      { instanceName: this.instance, digestFunction: DIGEST_FUNCTIONS[fn].value, requests },
    );
    const failed = res.responses.find((r) => r.status?.code);
    if (failed) throw new Error(`upstream ${this.url} refused blob ${failed.digest?.hash}/${failed.digest?.sizeBytes}: ${failed.status?.message}`);
  }

  private async streamUpload(store: BlobStore, digest: BlobDigest): Promise<void> {
    let call!: grpc.ClientWritableStream<bytestream.WriteRequest.$Properties>;
    const done = new Promise<bytestream.WriteResponse>((resolve, reject) => {
      call = (this.raw.ByteStream as unknown as {
        write(md: grpc.Metadata, cb: Callback<bytestream.WriteResponse>): grpc.ClientWritableStream<bytestream.WriteRequest.$Properties>;
      }).write(this.metadata(), (err, value) => (err ? reject(this.translate(err)) : resolve(value!)));
    });
    const name = uploadResourceName(this.instance, randomUUID(), digest);
    let offset = 0;
    let finished = false;
    done.then(() => (finished = true), () => (finished = true));
    for await (const chunk of await store.read(digest)) {
      const buf = chunk as Buffer;
      for (let at = 0; at < buf.length && !finished; at += CHUNK) {
        const data = buf.subarray(at, at + CHUNK);
        const last = offset + data.length === digest.size;
        const ok = call.write({ resourceName: offset === 0 ? name : '', writeOffset: offset, data, finishWrite: last });
        offset += data.length;
        if (!ok) await Promise.race([once(call, 'drain'), done.catch(() => {})]);
      }
      // The upstream already had it and ended the write early.
      if (finished) break;
    }
    call.end();
    const res = await done;
    if (Number(res.committedSize) !== digest.size) {
      throw new Error(`upstream ${this.url} committed ${res.committedSize} of ${digest.size} bytes of ${digest.hash}`);
    }
    this.answered();
  }

  private unary<Req, Res>(
    service: keyof typeof clients,
    method: string,
    req: Req,
    deadlineMs = UNARY_DEADLINE_MS,
    /** A refusal of this call alone (no right to write the action cache) says nothing about the rest. */
    refusalIsLocal = false,
  ): Promise<Res> {
    const client = this.raw[service] as unknown as Record<
      string,
      (r: Req, md: grpc.Metadata, o: grpc.CallOptions, cb: Callback<Res>) => grpc.ClientUnaryCall
    >;
    return new Promise((resolve, reject) => {
      client[method]!.call(client, req, this.metadata(), { deadline: Date.now() + deadlineMs }, (err, value) => {
        if (err && refusalIsLocal && (err.code === grpc.status.PERMISSION_DENIED || err.code === grpc.status.UNAUTHENTICATED)) return reject(err);
        if (err) return reject(this.translate(err));
        this.answered();
        resolve(value as Res);
      });
    });
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    // Some servers (Bazel's reference worker) refuse calls without RequestMetadata.
    md.set(REQUEST_METADATA_HEADER, this.requestMetadata);
    for (const [k, v] of Object.entries(this.headers)) md.set(k, v);
    return md;
  }

  /**
   * Transport failures, and an upstream that refuses our credentials, become
   * UpstreamUnreachableError (and mark the upstream down): either way it cannot
   * take work until somebody fixes it. Other answers stay ServiceErrors.
   */
  private translate(err: grpc.ServiceError): Error {
    if (UNUSABLE.has(err.code)) {
      this.setReachable(false, err.details || err.message);
      return new UpstreamUnreachableError(this.url, err.details || err.message);
    }
    if (err.code !== grpc.status.CANCELLED) this.answered();
    return err;
  }

  private answered(): void {
    this.setReachable(true);
  }

  private setReachable(reachable: boolean, problem?: string): void {
    if (this.health.reachable !== reachable) this.health.since = this.clock.now();
    this.health.reachable = reachable;
    this.health.problem = reachable ? undefined : problem;
  }
}
