// Typed promise wrappers around the grpc-js clients in engine/grpc/services.ts,
// so tests (and the bench) talk to a real server without callback plumbing.
import * as grpc from '@grpc/grpc-js';
import { clients } from '../../engine/grpc/services';
import { asset, bytestream, longrunning, protobuf, reapi } from '../../engine/proto';

/** Clients accept messages far above the 4 MiB default: tests probe the server's own limits. */
const CLIENT_OPTIONS: grpc.ClientOptions = {
  'grpc.max_receive_message_length': 128 * 1024 * 1024,
  'grpc.max_send_message_length': 128 * 1024 * 1024,
};

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;
type UnaryMethod<Req, Res> = (req: Req, metadata: grpc.Metadata, options: grpc.CallOptions, cb: Callback<Res>) => grpc.ClientUnaryCall;

function unary<Req, Res>(client: grpc.Client, name: string) {
  const fn = (client as unknown as Record<string, UnaryMethod<Req, Res>>)[name]!.bind(client);
  return (req: Req, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<Res> =>
    new Promise((resolve, reject) => {
      fn(req, metadata, options, (err, value) => (err ? reject(err) : resolve(value as Res)));
    });
}

/** Collects every message of a server stream. */
function serverStream<Req, Res>(client: grpc.Client, name: string) {
  const fn = (client as unknown as Record<string, (r: Req, m: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<Res>>)[name]!.bind(client);
  const open = (req: Req, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}) => fn(req, metadata, options);
  const collect = (req: Req, metadata?: grpc.Metadata, options?: grpc.CallOptions): Promise<Res[]> =>
    new Promise((resolve, reject) => {
      const out: Res[] = [];
      const call = open(req, metadata, options);
      call.on('data', (m: Res) => out.push(m));
      call.on('error', reject);
      call.on('end', () => resolve(out));
    });
  return { open, collect };
}

export interface KilnClients {
  address: string;
  capabilities: { get(req?: reapi.GetCapabilitiesRequest.$Properties): Promise<reapi.ServerCapabilities> };
  cas: {
    findMissing(req: reapi.FindMissingBlobsRequest.$Properties): Promise<reapi.FindMissingBlobsResponse>;
    batchUpdate(req: reapi.BatchUpdateBlobsRequest.$Properties): Promise<reapi.BatchUpdateBlobsResponse>;
    batchRead(req: reapi.BatchReadBlobsRequest.$Properties): Promise<reapi.BatchReadBlobsResponse>;
    /** Every page of the stream, in order. */
    getTree(req: reapi.GetTreeRequest.$Properties): Promise<reapi.GetTreeResponse[]>;
  };
  byteStream: {
    /** The whole read, plus the size of each chunk the server sent. */
    read(req: bytestream.ReadRequest.$Properties, options?: grpc.CallOptions): Promise<{ data: Buffer; chunkSizes: number[] }>;
    openRead(req: bytestream.ReadRequest.$Properties, options?: grpc.CallOptions): grpc.ClientReadableStream<bytestream.ReadResponse>;
    /** Sends `requests` in order and half-closes. */
    write(requests: bytestream.WriteRequest.$Properties[]): Promise<bytestream.WriteResponse>;
    /** A write stream the test drives by hand (to cancel halfway, say). */
    openWrite(): { call: grpc.ClientWritableStream<bytestream.WriteRequest.$Properties>; response: Promise<bytestream.WriteResponse> };
    queryWriteStatus(req: bytestream.QueryWriteStatusRequest.$Properties): Promise<bytestream.QueryWriteStatusResponse>;
  };
  actionCache: {
    get(req: reapi.GetActionResultRequest.$Properties): Promise<reapi.ActionResult>;
    update(req: reapi.UpdateActionResultRequest.$Properties): Promise<reapi.ActionResult>;
  };
  execution: {
    execute: ReturnType<typeof serverStream<reapi.ExecuteRequest.$Properties, longrunning.Operation>>;
    waitExecution: ReturnType<typeof serverStream<reapi.WaitExecutionRequest.$Properties, longrunning.Operation>>;
  };
  operations: {
    get(req: longrunning.GetOperationRequest.$Properties): Promise<longrunning.Operation>;
    list(req: longrunning.ListOperationsRequest.$Properties): Promise<longrunning.ListOperationsResponse>;
    cancel(req: longrunning.CancelOperationRequest.$Properties): Promise<protobuf.Empty>;
  };
  /** Remote Asset API (Fetch and Push). */
  asset: {
    fetchBlob(req: asset.FetchBlobRequest.$Properties, metadata?: grpc.Metadata): Promise<asset.FetchBlobResponse>;
    fetchDirectory(req: asset.FetchDirectoryRequest.$Properties): Promise<asset.FetchDirectoryResponse>;
    pushBlob(req: asset.PushBlobRequest.$Properties): Promise<asset.PushBlobResponse>;
    pushDirectory(req: asset.PushDirectoryRequest.$Properties): Promise<asset.PushDirectoryResponse>;
  };
  /** The raw grpc-js clients, for anything the wrappers do not cover. */
  raw: Record<keyof typeof clients, grpc.Client>;
  close(): void;
}

/** Connects to `address` ("127.0.0.1:PORT" or "grpc://127.0.0.1:PORT"). */
export function connectClients(address: string, credentials = grpc.credentials.createInsecure()): KilnClients {
  const target = address.replace(/^grpc:\/\//, '');
  const raw = Object.fromEntries(
    Object.entries(clients).map(([name, Ctor]) => [name, new Ctor(target, credentials, CLIENT_OPTIONS)]),
  ) as unknown as Record<keyof typeof clients, grpc.Client>;
  const bs = raw.ByteStream as unknown as {
    write(cb: Callback<bytestream.WriteResponse>): grpc.ClientWritableStream<bytestream.WriteRequest.$Properties>;
  };
  const readStream = serverStream<bytestream.ReadRequest.$Properties, bytestream.ReadResponse>(raw.ByteStream, 'read');

  const openWrite = () => {
    let call!: grpc.ClientWritableStream<bytestream.WriteRequest.$Properties>;
    const response = new Promise<bytestream.WriteResponse>((resolve, reject) => {
      call = bs.write((err, value) => (err ? reject(err) : resolve(value!)));
    });
    return { call, response };
  };

  return {
    address: target,
    capabilities: { get: (req = {}) => unary<typeof req, reapi.ServerCapabilities>(raw.Capabilities, 'getCapabilities')(req) },
    cas: {
      findMissing: unary(raw.ContentAddressableStorage, 'findMissingBlobs'),
      batchUpdate: unary(raw.ContentAddressableStorage, 'batchUpdateBlobs'),
      batchRead: unary(raw.ContentAddressableStorage, 'batchReadBlobs'),
      getTree: serverStream<reapi.GetTreeRequest.$Properties, reapi.GetTreeResponse>(raw.ContentAddressableStorage, 'getTree').collect,
    },
    byteStream: {
      openRead: (req, options) => readStream.open(req, undefined, options),
      read: async (req, options) => {
        const msgs = await readStream.collect(req, undefined, options);
        const chunks = msgs.map((m) => Buffer.from(m.data));
        return { data: Buffer.concat(chunks), chunkSizes: chunks.map((c) => c.length) };
      },
      openWrite,
      write: (requests) => {
        const { call, response } = openWrite();
        for (const r of requests) call.write(r);
        call.end();
        return response;
      },
      queryWriteStatus: unary(raw.ByteStream, 'queryWriteStatus'),
    },
    actionCache: {
      get: unary(raw.ActionCache, 'getActionResult'),
      update: unary(raw.ActionCache, 'updateActionResult'),
    },
    execution: {
      execute: serverStream(raw.Execution, 'execute'),
      waitExecution: serverStream(raw.Execution, 'waitExecution'),
    },
    operations: {
      get: unary(raw.Operations, 'getOperation'),
      list: unary(raw.Operations, 'listOperations'),
      cancel: unary(raw.Operations, 'cancelOperation'),
    },
    asset: {
      fetchBlob: unary(raw.Fetch, 'fetchBlob'),
      fetchDirectory: unary(raw.Fetch, 'fetchDirectory'),
      pushBlob: unary(raw.Push, 'pushBlob'),
      pushDirectory: unary(raw.Push, 'pushDirectory'),
    },
    raw,
    close: () => Object.values(raw).forEach((c) => c.close()),
  };
}

/** The ServiceError a promise rejects with; fails the test when it resolves. */
export async function grpcError(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (err) {
    if (typeof (err as grpc.ServiceError).code === 'number') return err as grpc.ServiceError;
    throw err;
  }
  throw new Error('expected the call to fail with a gRPC error, but it succeeded');
}

export { grpc };
export const Status = grpc.status;
