// gRPC errors with a person-readable message and, where the spec asks for
// them, typed details in `grpc-status-details-bin` (PreconditionFailure, BadRequest).
import { Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import { packAny, encode, rpc, type MessageType, protobuf } from '../proto';
import type { BlobDigest } from '../digest';
import { StoreFullError, boundedMessage, errnoVerdict, messageWithoutPaths } from '../common/fault-errors';

export { Status };

export class GrpcError extends Error {
  constructor(
    readonly code: Status,
    message: string,
    readonly details: protobuf.Any[] = [],
  ) {
    // Messages echo client input; an unbounded one never reaches the client (see boundedMessage).
    // No stack: a GrpcError is an answer to a client, not a crash to debug, and capturing
    // one cost ~40 µs per call while a burst of Executes was refused.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(boundedMessage(message));
    Error.stackTraceLimit = limit;
  }

  /** The form grpc-js sends: code, details (message) and trailers with the rich status. */
  toServiceError(): Partial<ServiceError> {
    const metadata = new Metadata();
    if (this.details.length > 0) {
      const st = rpc.Status.create({ code: this.code, message: this.message, details: this.details });
      metadata.set('grpc-status-details-bin', encode(rpc.Status, st));
    }
    return { code: this.code, details: this.message, message: this.message, metadata };
  }

  /** As a google.rpc.Status, for per-blob batch responses and ExecuteResponse.status. */
  toStatus(): rpc.Status {
    return rpc.Status.create({ code: this.code, message: this.message, details: this.details });
  }
}

export const invalidArgument = (message: string, field?: string) =>
  new GrpcError(
    Status.INVALID_ARGUMENT,
    message,
    field
      ? [packAny(rpc.BadRequest, rpc.BadRequest.create({ fieldViolations: [{ field: boundedMessage(field), description: boundedMessage(message) }] }))]
      : [],
  );

export const notFound = (message: string) => new GrpcError(Status.NOT_FOUND, message);
export const unavailable = (message: string) => new GrpcError(Status.UNAVAILABLE, message);
export const resourceExhausted = (message: string) => new GrpcError(Status.RESOURCE_EXHAUSTED, message);
export const internal = (message: string) => new GrpcError(Status.INTERNAL, message);
export const unauthenticated = (message: string) => new GrpcError(Status.UNAUTHENTICATED, message);

/** FAILED_PRECONDITION naming each missing blob as `blobs/{hash}/{size}`: Bazel re-uploads exactly these. */
export function missingBlobs(digests: BlobDigest[], what = 'inputs'): GrpcError {
  const violations = digests.map((d) => ({
    type: 'MISSING',
    subject: d.fn === 'sha256' ? `blobs/${d.hash}/${d.size}` : `blobs/${d.fn}/${d.hash}/${d.size}`,
    description: `${what} blob is not in the CAS`,
  }));
  const list = digests.slice(0, 3).map((d) => `${d.hash}/${d.size}`).join(', ');
  const more = digests.length > 3 ? ` and ${digests.length - 3} more` : '';
  return new GrpcError(
    Status.FAILED_PRECONDITION,
    `${digests.length} ${what} blob(s) missing from the CAS: ${list}${more}`,
    [packAny(rpc.PreconditionFailure, rpc.PreconditionFailure.create({ violations }))],
  );
}

export function statusOk(): rpc.Status {
  return rpc.Status.create({ code: Status.OK });
}

/** Reads the rich status details a server sent (for tests and the CLI). */
export function decodeStatusDetails(metadata: Metadata | undefined): rpc.Status | undefined {
  const [raw] = metadata?.get('grpc-status-details-bin') ?? [];
  if (!raw || typeof raw === 'string') return undefined;
  return rpc.Status.decode(raw);
}

export function unpackDetail<T>(type: MessageType<T>, st: rpc.Status | undefined): T | undefined {
  const any = st?.details.find((d) => d.type_url === type.getTypeUrl('type.googleapis.com'));
  return any?.value ? type.decode(any.value) : undefined;
}

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => Promise<void>;

/**
 * A unary handler from a body that returns the response or throws: every throw
 * becomes a gRPC status. The promise it returns settles when the call is
 * answered, so the engine's shutdown can wait for handlers still running.
 */
export function unary<Req, Res>(body: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res): Unary<Req, Res> {
  return (call, callback) =>
    Promise.resolve()
      .then(() => body(call.request, call))
      .then(
        (res) => callback(null, res),
        (err) => callback(toServiceError(err)),
      );
}

/** Turns anything thrown in a handler into what grpc-js should send; unknown errors become INTERNAL. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  return toGrpcError(err).toServiceError();
}

/**
 * Anything thrown, as the status a client should see: a GrpcError as it is, a full
 * store or disk as RESOURCE_EXHAUSTED, a name the file system refuses as
 * INVALID_ARGUMENT, anything else INTERNAL; never with the server's paths.
 */
export function toGrpcError(err: unknown, context = 'internal error'): GrpcError {
  if (err instanceof GrpcError) return err;
  if (err instanceof StoreFullError) return resourceExhausted(err.message);
  const verdict = errnoVerdict(err);
  if (verdict?.kind === 'resource-exhausted') return resourceExhausted(verdict.message);
  if (verdict?.kind === 'invalid-argument') return invalidArgument(verdict.message);
  return internal(`${context}: ${messageWithoutPaths(err)}`);
}
