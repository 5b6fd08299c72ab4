// A grpc-js server interceptor that applies the AccessPolicy to every call,
// before any service sees it: refused calls end UNAUTHENTICATED.
import * as grpc from '@grpc/grpc-js';
import type { AccessPolicy } from './access-policy';

export function grpcAuthInterceptor(policy: AccessPolicy, onReject?: (reason: string, peer: string) => void): grpc.ServerInterceptor {
  return (_method, call) => {
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const [authorization] = metadata.get('authorization');
        const peer = call.getPeer();
        const decision = policy.check({
          peer,
          authorization: typeof authorization === 'string' ? authorization : undefined,
          clientCertificate: call.getAuthContext().sslPeerCertificate?.raw,
        });
        if (decision.allowed) {
          next(metadata);
          return;
        }
        onReject?.(decision.reason, peer);
        call.sendStatus({ code: grpc.status.UNAUTHENTICATED, details: decision.reason, metadata: new grpc.Metadata() });
      })
      .build();
    const responder = new grpc.ResponderBuilder().withStart((next) => next(listener)).build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
