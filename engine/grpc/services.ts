// grpc-js service definitions built from the generated protobuf codecs, so
// servers and clients (tests, bench) share one wire description.
import * as grpc from '@grpc/grpc-js';
import { asset, bes, bytestream, encode, logstream, longrunning, protobuf, reapi, type MessageType } from '../proto';
import { lenientDecoder } from './malformed-requests';
import { encodeReadResponseTransient } from './read-response-encoder';
import { decodeFindMissingBlobsRequest, encodeFindMissingBlobsResponse } from './find-missing-request';
import type { RequestOrigin } from '../common/invocation-types';

function method<Req, Res>(
  path: string,
  req: MessageType<Req>,
  res: MessageType<Res>,
  requestStream = false,
  responseStream = false,
): grpc.MethodDefinition<Req, Res> {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: (m: Req) => encode(req, m),
    // A malformed request reaches the handler as a marker (malformed-requests.ts) rather than an INTERNAL from grpc-js.
    requestDeserialize: lenientDecoder((b: Buffer) => req.decode(b)),
    // A handler may answer with the message already encoded (a stored ActionResult): sent as it is.
    responseSerialize: (m: Res) => (m instanceof Uint8Array ? asBuffer(m) : encode(res, m)),
    responseDeserialize: (b: Buffer) => res.decode(b),
  };
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const V2 = '/build.bazel.remote.execution.v2';

export const CapabilitiesService = {
  getCapabilities: method(`${V2}.Capabilities/GetCapabilities`, reapi.GetCapabilitiesRequest, reapi.ServerCapabilities),
};

export const ContentAddressableStorageService = {
  findMissingBlobs: {
    ...method(`${V2}.ContentAddressableStorage/FindMissingBlobs`, reapi.FindMissingBlobsRequest, reapi.FindMissingBlobsResponse),
    // 10,000 digests a call: read directly (find-missing-request.ts), protobufjs for any unusual shape.
    requestDeserialize: lenientDecoder((b: Buffer) => decodeFindMissingBlobsRequest(b) as reapi.FindMissingBlobsRequest),
    // The missing digests' bytes copied from the request (find-missing-request.ts).
    responseSerialize: encodeFindMissingBlobsResponse,
  },
  batchUpdateBlobs: method(`${V2}.ContentAddressableStorage/BatchUpdateBlobs`, reapi.BatchUpdateBlobsRequest, reapi.BatchUpdateBlobsResponse),
  batchReadBlobs: method(`${V2}.ContentAddressableStorage/BatchReadBlobs`, reapi.BatchReadBlobsRequest, reapi.BatchReadBlobsResponse),
  getTree: method(`${V2}.ContentAddressableStorage/GetTree`, reapi.GetTreeRequest, reapi.GetTreeResponse, false, true),
};

export const ActionCacheService = {
  getActionResult: method(`${V2}.ActionCache/GetActionResult`, reapi.GetActionResultRequest, reapi.ActionResult),
  updateActionResult: method(`${V2}.ActionCache/UpdateActionResult`, reapi.UpdateActionResultRequest, reapi.ActionResult),
};

export const ExecutionService = {
  execute: method(`${V2}.Execution/Execute`, reapi.ExecuteRequest, longrunning.Operation, false, true),
  waitExecution: method(`${V2}.Execution/WaitExecution`, reapi.WaitExecutionRequest, longrunning.Operation, false, true),
};

export const OperationsService = {
  listOperations: method('/google.longrunning.Operations/ListOperations', longrunning.ListOperationsRequest, longrunning.ListOperationsResponse),
  getOperation: method('/google.longrunning.Operations/GetOperation', longrunning.GetOperationRequest, longrunning.Operation),
  deleteOperation: method('/google.longrunning.Operations/DeleteOperation', longrunning.DeleteOperationRequest, protobuf.Empty),
  cancelOperation: method('/google.longrunning.Operations/CancelOperation', longrunning.CancelOperationRequest, protobuf.Empty),
  waitOperation: method('/google.longrunning.Operations/WaitOperation', longrunning.WaitOperationRequest, longrunning.Operation),
};

export const ByteStreamService = {
  read: {
    ...method('/google.bytestream.ByteStream/Read', bytestream.ReadRequest, bytestream.ReadResponse, false, true),
    // Encoded into a reused buffer: grpc-js copies it into its frame at once (read-response-encoder.ts).
    responseSerialize: (m: bytestream.ReadResponse) => encodeReadResponseTransient(m),
  },
  write: method('/google.bytestream.ByteStream/Write', bytestream.WriteRequest, bytestream.WriteResponse, true, false),
  queryWriteStatus: method('/google.bytestream.ByteStream/QueryWriteStatus', bytestream.QueryWriteStatusRequest, bytestream.QueryWriteStatusResponse),
};

export const LogStreamService = {
  createLogStream: method('/build.bazel.remote.logstream.v1.LogStreamService/CreateLogStream', logstream.CreateLogStreamRequest, logstream.LogStream),
};

const ASSET = '/build.bazel.remote.asset.v1';

export const FetchService = {
  fetchBlob: method(`${ASSET}.Fetch/FetchBlob`, asset.FetchBlobRequest, asset.FetchBlobResponse),
  fetchDirectory: method(`${ASSET}.Fetch/FetchDirectory`, asset.FetchDirectoryRequest, asset.FetchDirectoryResponse),
};

export const PushService = {
  pushBlob: method(`${ASSET}.Push/PushBlob`, asset.PushBlobRequest, asset.PushBlobResponse),
  pushDirectory: method(`${ASSET}.Push/PushDirectory`, asset.PushDirectoryRequest, asset.PushDirectoryResponse),
};

const BES = '/google.devtools.build.v1.PublishBuildEvent';

/** The Build Event Service (bazel --bes_backend). The stream's messages decode leniently: the handler answers a bad one. */
export const PublishBuildEventService = {
  publishLifecycleEvent: method(`${BES}/PublishLifecycleEvent`, bes.PublishLifecycleEventRequest, protobuf.Empty),
  publishBuildToolEventStream: {
    ...method(`${BES}/PublishBuildToolEventStream`, bes.PublishBuildToolEventStreamRequest, bes.PublishBuildToolEventStreamResponse, true, true),
    requestDeserialize: lenientDecoder((b: Buffer) => bes.PublishBuildToolEventStreamRequest.decode(b)),
  },
};

/** Client constructors for tests, the bench and `kiln` subcommands. */
export const clients = {
  Capabilities: grpc.makeGenericClientConstructor(CapabilitiesService, 'Capabilities'),
  ContentAddressableStorage: grpc.makeGenericClientConstructor(ContentAddressableStorageService, 'ContentAddressableStorage'),
  ActionCache: grpc.makeGenericClientConstructor(ActionCacheService, 'ActionCache'),
  Execution: grpc.makeGenericClientConstructor(ExecutionService, 'Execution'),
  Operations: grpc.makeGenericClientConstructor(OperationsService, 'Operations'),
  ByteStream: grpc.makeGenericClientConstructor(ByteStreamService, 'ByteStream'),
  LogStream: grpc.makeGenericClientConstructor(LogStreamService, 'LogStream'),
  Fetch: grpc.makeGenericClientConstructor(FetchService, 'Fetch'),
  Push: grpc.makeGenericClientConstructor(PushService, 'Push'),
  PublishBuildEvent: grpc.makeGenericClientConstructor(PublishBuildEventService, 'PublishBuildEvent'),
};

/**
 * Set by a Kiln that hands an action to a peer Kiln: the peer must run it
 * itself, never forward it again (no loops between peers).
 */
export const FORWARDED_HEADER = 'x-kiln-forwarded';

/** Whether the call came from a peer Kiln that forwarded the action. */
export function isForwarded(metadata: grpc.Metadata): boolean {
  const [value] = metadata.get(FORWARDED_HEADER);
  return typeof value === 'string' && value !== '' && value !== '0';
}

/** Metadata header in which Bazel sends RequestMetadata (tool, action mnemonic, target). */
export const REQUEST_METADATA_HEADER = 'build.bazel.remote.execution.v2.requestmetadata-bin';

export function requestMetadataOf(metadata: grpc.Metadata): reapi.RequestMetadata | undefined {
  const [value] = metadata.get(REQUEST_METADATA_HEADER);
  if (!value || typeof value === 'string') return undefined;
  try {
    return reapi.RequestMetadata.decode(value);
  } catch {
    return undefined;
  }
}

/** The metadata as plain fields, leaving out empty ones; undefined when it says nothing. */
export function requestOrigin(meta: reapi.RequestMetadata.$Properties | null | undefined): RequestOrigin | undefined {
  if (!meta) return undefined;
  const text = (s: string | null | undefined, max = 1024) => (s ? s.slice(0, max) : undefined);
  const origin: RequestOrigin = {
    toolInvocationId: text(meta.toolInvocationId, 256),
    correlatedInvocationsId: text(meta.correlatedInvocationsId, 256),
    actionMnemonic: text(meta.actionMnemonic, 256),
    targetId: text(meta.targetId),
    configurationId: text(meta.configurationId, 256),
    toolName: text(meta.toolDetails?.toolName, 256),
    toolVersion: text(meta.toolDetails?.toolVersion, 256),
  };
  for (const k of Object.keys(origin) as (keyof RequestOrigin)[]) if (origin[k] === undefined) delete origin[k];
  return Object.keys(origin).length > 0 ? origin : undefined;
}
