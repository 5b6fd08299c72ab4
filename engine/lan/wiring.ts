// The LAN pieces the engine plugs in: gRPC credentials and auth, and the mDNS
// advertisement (LAN mode only). The HTTP side of the same policy is
// http/lan-access.ts (http sits above lan and imports it, never the reverse).
import * as grpc from '@grpc/grpc-js';
import { grpcAuthInterceptor } from '../auth/grpc-auth';
import { isLanMode, type KilnConfig } from '../config';
import type { EventBus } from '../events/event-bus';
import { tlsServerCredentials } from '../tls/server-credentials';
import type { Access } from './access';
import { advertise, type Advertisement } from './discovery';

/**
 * The gRPC server's interceptors: the access check, or none where the policy admits
 * every caller that can reach `host` (on loopback without require-token-on-loopback),
 * since each interceptor costs every call ~30 µs of CPU.
 */
export function grpcInterceptors(access: Access, host: string, events: EventBus, now: () => number): grpc.ServerInterceptor[] {
  if (access.policy.admitsEveryoneOn(host)) return [];
  return [grpcAuthInterceptor(access.policy, (reason) => events.emit({ type: 'auth.rejected', at: now(), transport: 'grpc', reason }))];
}

export function grpcCredentials(access: Access): grpc.ServerCredentials {
  const { tls } = access;
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return tlsServerCredentials({ certFile: tls.certPath, keyFile: tls.keyPath, clientCaFile: tls.clientCaFiles });
}

/** Advertises only in LAN mode with mdns on; on loopback nothing multicast is ever created. */
export function advertiseInLanMode(config: KilnConfig, ports: { grpcPort: number; httpPort: number; tls: boolean }): Advertisement | undefined {
  if (!isLanMode(config) || !config.mdns) return undefined;
  return advertise({ ...ports, interfaceAddress: config.host });
}
