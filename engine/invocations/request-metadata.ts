// Reads the RequestMetadata Bazel sends with every gRPC call (header
// build.bazel.remote.execution.v2.requestmetadata-bin) once, in a server
// interceptor, so uploads, lookups and executions alike tell which invocation
// they belong to. Calls without it (other tools, health checks) pass untouched.
import * as grpc from '@grpc/grpc-js';
import type { RequestOrigin } from '../common/invocation-types';
import { requestMetadataOf, requestOrigin } from '../grpc/services';

export type OriginListener = (method: string, origin: RequestOrigin) => void;

/** Put it after the access check in the interceptor list, so refused calls are not counted. */
export function requestMetadataInterceptor(onOrigin: OriginListener): grpc.ServerInterceptor {
  return (methodDescriptor, call) => {
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const origin = requestOrigin(requestMetadataOf(metadata));
        if (origin) {
          try {
            onOrigin(methodDescriptor.path, origin);
          } catch (err) {
            // Bookkeeping must never fail the call it watches.
            console.error('kiln: request metadata listener failed:', err);
          }
        }
        next(metadata);
      })
      .build();
    const responder = new grpc.ResponderBuilder().withStart((next) => next(listener)).build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
