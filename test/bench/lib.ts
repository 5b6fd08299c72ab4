// Small promise wrappers over the grpc-js generic clients, statistics, and the
// bare grpc-js server the bench compares Kiln against (run in its own process
// by bare-server.ts).
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { bytestream, encode, reapi } from '../../engine/proto';
import { ActionCacheService, ByteStreamService, clients, REQUEST_METADATA_HEADER } from '../../engine/grpc/services';

export const CHUNK = 64 * 1024;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
};

type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/**
 * Every call carries RequestMetadata the way Bazel's do (the reference worker
 * refuses calls without it): one tool invocation per client process.
 */
const requestMetadata = encode(
  reapi.RequestMetadata,
  reapi.RequestMetadata.create({ toolDetails: { toolName: 'kiln-bench', toolVersion: '1' }, toolInvocationId: randomUUID() }),
);
const withRequestMetadata: grpc.Interceptor = (options, nextCall) =>
  new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set(REQUEST_METADATA_HEADER, requestMetadata);
      next(metadata, listener);
    },
  });

function make(ctor: grpc.ServiceClientConstructor, address: string): Client {
  return new ctor(address, grpc.credentials.createInsecure(), { ...CHANNEL_OPTIONS, interceptors: [withRequestMetadata] }) as unknown as Client;
}

/** host:port from grpc://host:port. */
export function addressOf(url: string): string {
  return url.replace(/^grpc:\/\//, '');
}

export function unary<Req, Res>(client: Client, method: string, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    client[method](req, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
  });
}

/** The REAPI clients the bench needs, on one channel each. */
export class ReapiClients {
  readonly cas: Client;
  readonly ac: Client;
  readonly bs: Client;
  readonly exec: Client;
  readonly caps: Client;

  constructor(address: string) {
    this.cas = make(clients.ContentAddressableStorage, address);
    this.ac = make(clients.ActionCache, address);
    this.bs = make(clients.ByteStream, address);
    this.exec = make(clients.Execution, address);
    this.caps = make(clients.Capabilities, address);
  }

  close(): void {
    for (const c of [this.cas, this.ac, this.bs, this.exec, this.caps]) c.close();
  }
}

/** Streams `data` in CHUNK-sized WriteRequests, honouring backpressure. */
export async function byteStreamWrite(bs: Client, resourceName: string, data: Buffer): Promise<number> {
  let callback!: (err: grpc.ServiceError | null, res?: bytestream.WriteResponse) => void;
  const done = new Promise<bytestream.WriteResponse>((resolve, reject) => {
    callback = (err, res) => (err ? reject(err) : resolve(res!));
  });
  const call = bs.write(callback) as grpc.ClientWritableStream<bytestream.WriteRequest>;
  for (let off = 0; off < data.length; off += CHUNK) {
    const end = Math.min(off + CHUNK, data.length);
    const msg = bytestream.WriteRequest.create({
      resourceName: off === 0 ? resourceName : '',
      writeOffset: off,
      finishWrite: end === data.length,
      data: data.subarray(off, end),
    });
    if (!call.write(msg)) await once(call, 'drain');
  }
  call.end();
  const res = await done;
  return Number(res.committedSize);
}

/** Reads a whole resource, returning the byte count. */
export async function byteStreamRead(bs: Client, resourceName: string): Promise<number> {
  const call = bs.read(bytestream.ReadRequest.create({ resourceName })) as grpc.ClientReadableStream<bytestream.ReadResponse>;
  let bytes = 0;
  for await (const msg of call as AsyncIterable<bytestream.ReadResponse>) bytes += msg.data.length;
  return bytes;
}

/**
 * The baseline: a bare grpc-js server speaking the same ByteStream and
 * ActionCache messages with no storage behind them. Write sinks whatever
 * arrives; Read sources `readBytes` (from the resource name's size) in CHUNK
 * messages; UpdateActionResult keeps the one result it was given and
 * GetActionResult answers it, so both servers return messages of one size.
 */
export async function startBaselineServer(): Promise<{ address: string; stop(): Promise<void> }> {
  const server = new grpc.Server(CHANNEL_OPTIONS);
  const chunk = Buffer.alloc(CHUNK, 7);
  let result = reapi.ActionResult.create({});
  server.addService(ByteStreamService as unknown as grpc.ServiceDefinition, {
    write(call: grpc.ServerReadableStream<bytestream.WriteRequest, bytestream.WriteResponse>, cb: grpc.sendUnaryData<bytestream.WriteResponse>) {
      let n = 0;
      call.on('data', (m: bytestream.WriteRequest) => (n += m.data.length));
      call.on('end', () => cb(null, bytestream.WriteResponse.create({ committedSize: n })));
    },
    async read(call: grpc.ServerWritableStream<bytestream.ReadRequest, bytestream.ReadResponse>) {
      const readBytes = Number(call.request.resourceName.split('/').pop());
      for (let sent = 0; sent < readBytes; sent += CHUNK) {
        const data = sent + CHUNK <= readBytes ? chunk : chunk.subarray(0, readBytes - sent);
        if (!call.write(bytestream.ReadResponse.create({ data }))) await once(call, 'drain');
      }
      call.end();
    },
    queryWriteStatus(_call: unknown, cb: grpc.sendUnaryData<unknown>) {
      cb({ code: grpc.status.UNIMPLEMENTED });
    },
  });
  server.addService(ActionCacheService as unknown as grpc.ServiceDefinition, {
    getActionResult(_call: unknown, cb: grpc.sendUnaryData<reapi.ActionResult>) {
      cb(null, result);
    },
    updateActionResult(call: grpc.ServerUnaryCall<reapi.UpdateActionResultRequest, reapi.ActionResult>, cb: grpc.sendUnaryData<reapi.ActionResult>) {
      result = reapi.ActionResult.create(call.request.actionResult ?? {});
      cb(null, result);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

export function summarize(samples: number[]): { p50: number; p99: number; n: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: quantile(s, 0.5), p99: quantile(s, 0.99), n: s.length };
}

export function median(values: number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

/** Median and spread of repeated measurements: p25–p75 from 8 values on, min–max below that. */
export interface Spread {
  median: number;
  lo: number;
  hi: number;
  n: number;
  /** 'p25–p75' or 'min–max', for the table. */
  kind: string;
}

export function spread(values: number[]): Spread {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  const wide = s.length >= 8;
  const mid = s.length >> 1;
  return {
    median: s.length === 0 ? NaN : s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2,
    lo: wide ? quantile(s, 0.25) : s[0] ?? NaN,
    hi: wide ? quantile(s, 0.75) : s[s.length - 1] ?? NaN,
    n: s.length,
    kind: wide ? 'p25–p75' : 'min–max',
  };
}

/** Runs `task` with `inFlight` concurrent loops until `total` calls are done; returns calls/s. */
export async function throughput(total: number, inFlight: number, task: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) await task(next++);
    }),
  );
  return total / ((performance.now() - t0) / 1000);
}

export const nowMs = () => performance.now();
