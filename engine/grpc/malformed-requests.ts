// A request that is not a valid protobuf of its type is the client's mistake:
// INVALID_ARGUMENT, not the INTERNAL grpc-js answers when a deserializer throws.
// The deserializer hands such a request on as a marker instead of throwing, and
// the handler wrapper answers it before the service sees it. A client stream's
// messages arrive one by one, so there the wrapper checks each as the handler
// iterates the stream, which throws INVALID_ARGUMENT at the first bad one.
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

/**
 * `impl` with every handler answering a malformed request INVALID_ARGUMENT. Handlers
 * of client streams must read their stream by async iteration (for await), which is
 * where a malformed message is refused.
 */
export function refuseMalformed(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = { ...impl };
  for (const [name, method] of Object.entries(def)) {
    const handler = impl[name] as ((call: never, callback?: never) => unknown) | undefined;
    if (!handler) continue;
    const invalid = (request: Malformed) => invalidArgument(`the request is not a valid ${method.path} message: ${request[MALFORMED]}`);
    if (method.requestStream) {
      out[name] = ((call: object, callback?: unknown) => handler(checkedStream(call, invalid) as never, callback as never)) as grpc.UntypedHandleCall;
      continue;
    }
    const refusal = (request: Malformed) => invalid(request).toServiceError();
    out[name] = ((call: { request: unknown; emit(event: 'error', e: unknown): void }, callback?: (e: unknown) => void) => {
      if (!isMalformed(call.request)) return handler(call as never, callback as never);
      if (method.responseStream) call.emit('error', refusal(call.request));
      else callback?.(refusal(call.request));
      return Promise.resolve();
    }) as grpc.UntypedHandleCall;
  }
  return out;
}

/** `call` whose async iteration throws `refusal(m)` at the first malformed message instead of yielding it. */
function checkedStream<T extends object>(call: T, refusal: (request: Malformed) => Error): T {
  async function* messages(): AsyncGenerator<unknown> {
    for await (const m of call as unknown as AsyncIterable<unknown>) {
      if (isMalformed(m)) throw refusal(m);
      yield m;
    }
  }
  return new Proxy(call, {
    get(target, prop) {
      if (prop === Symbol.asyncIterator) return messages;
      const value: unknown = Reflect.get(target, prop, target);
      // grpc-js's methods keep their own `this` (the proxy is not an EventEmitter's owner).
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
