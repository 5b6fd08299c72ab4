// A request that is not a valid protobuf of its type is the client's mistake:
// INVALID_ARGUMENT, not the INTERNAL grpc-js answers when a deserializer throws.
// The deserializer hands such a request on as a marker instead of throwing, and
// the handler wrapper answers it before the service sees it. Client-streaming
// methods keep grpc-js's answer: their messages reach the handler one by one.
import type * as grpc from '@grpc/grpc-js';
import { invalidArgument } from './status';

const MALFORMED = Symbol('malformed request');

interface Malformed {
  [MALFORMED]: string;
}

function isMalformed(request: unknown): request is Malformed {
  return typeof request === 'object' && request !== null && MALFORMED in request;
}

/** Why a request decoded by lenientDecoder is not valid, or undefined when it is (streaming handlers check each message). */
export function malformedReason(request: unknown): string | undefined {
  return isMalformed(request) ? request[MALFORMED] : undefined;
}

/** `decode`, returning a marker instead of throwing on bytes that are not a valid message. */
export function lenientDecoder<T>(decode: (bytes: Buffer) => T): (bytes: Buffer) => T {
  return (bytes) => {
    try {
      return decode(bytes);
    } catch (err) {
      return { [MALFORMED]: err instanceof Error ? err.message : String(err) } as unknown as T;
    }
  };
}

/** `impl` with every unary and server-streaming handler answering a malformed request INVALID_ARGUMENT. */
export function refuseMalformed(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = { ...impl };
  for (const [name, method] of Object.entries(def)) {
    const handler = impl[name] as ((call: never, callback?: never) => unknown) | undefined;
    if (!handler || method.requestStream) continue;
    const refusal = (request: Malformed) =>
      invalidArgument(`the request is not a valid ${method.path} message: ${request[MALFORMED]}`).toServiceError();
    out[name] = ((call: { request: unknown; emit(event: 'error', e: unknown): void }, callback?: (e: unknown) => void) => {
      if (!isMalformed(call.request)) return handler(call as never, callback as never);
      if (method.responseStream) call.emit('error', refusal(call.request));
      else callback?.(refusal(call.request));
      return Promise.resolve();
    }) as grpc.UntypedHandleCall;
  }
  return out;
}
