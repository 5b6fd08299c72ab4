// Reads the RequestMetadata Bazel sends with every gRPC call (header
// build.bazel.remote.execution.v2.requestmetadata-bin) once per call, so
// uploads, lookups and executions alike tell which invocation they belong to.
// Calls without it (other tools, health checks) pass untouched.
//
// A wrapper around the service's handlers rather than a grpc-js server
// interceptor: each interceptor wraps every call in another intercepting call
// (~30 µs of CPU per call), and a handler runs only for calls the access check
// (an interceptor, in LAN mode) accepted, so refused calls are still not counted.
import type * as grpc from '@grpc/grpc-js';
import type { RequestOrigin } from '../common/invocation-types';
import { requestMetadataOf, requestOrigin } from '../grpc/services';

export type OriginListener = (method: string, origin: RequestOrigin) => void;

/** `impl` with every handler first telling `onOrigin` the RequestMetadata of its call, if any. */
export function observeRequestOrigins(
  def: grpc.ServiceDefinition,
  impl: grpc.UntypedServiceImplementation,
  onOrigin: OriginListener,
): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = { ...impl };
  for (const [name, method] of Object.entries(def)) {
    const handler = impl[name] as ((call: { metadata: grpc.Metadata }, callback?: unknown) => unknown) | undefined;
    if (!handler) continue;
    const path = method.path;
    out[name] = ((call: { metadata: grpc.Metadata }, callback?: unknown) => {
      const origin = requestOrigin(requestMetadataOf(call.metadata));
      if (origin) {
        try {
          onOrigin(path, origin);
        } catch (err) {
          // Bookkeeping must never fail the call it watches.
          console.error('kiln: request metadata listener failed:', err);
        }
      }
      return handler(call, callback);
    }) as grpc.UntypedHandleCall;
  }
  return out;
}
