// The LAN pieces the engine plugs in: gRPC credentials and auth, the HTTP
// side of the same policy, and the mDNS advertisement (LAN mode only).
import * as grpc from '@grpc/grpc-js';
import { grpcAuthInterceptor } from '../auth/grpc-auth';
import { isLanMode, type KilnConfig } from '../config';
import type { EventBus } from '../events/event-bus';
import type { HttpStartOptions } from '../http/observability';
import { LanRoutes, type EngineSettingsHooks } from '../http/lan-routes';
import { tlsServerCredentials } from '../tls/server-credentials';
import type { Access } from './access';
import { advertise, type Advertisement } from './discovery';

export function grpcInterceptor(access: Access, events: EventBus, now: () => number): grpc.ServerInterceptor {
  return grpcAuthInterceptor(access.policy, (reason) => events.emit({ type: 'auth.rejected', at: now(), transport: 'grpc', reason }));
}

export function grpcCredentials(access: Access): grpc.ServerCredentials {
  const { tls } = access;
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return tlsServerCredentials({ certFile: tls.certPath, keyFile: tls.keyPath, clientCaFile: tls.clientCaFiles });
}

export function httpAccessOptions(
  config: KilnConfig,
  access: Access,
  grpcPort: () => number,
  engineSettings?: EngineSettingsHooks,
): Pick<HttpStartOptions, 'access' | 'tls' | 'lanRoutes'> {
  const { tls } = access;
  const kilnCa = tls && !tls.userCertificate ? { caPem: tls.kilnCaPem, caPath: tls.kilnCaPath } : {};
  return {
    access: access.policy,
    tls: tls && { certPem: tls.certPem, keyPem: tls.keyPem, clientCas: tls.clientCaPems },
    lanRoutes: new LanRoutes({
      dataDir: config.dataDir,
      tokens: access.tokens,
      host: config.host,
      grpcPort,
      lanActive: isLanMode(config),
      tls: tls && kilnCa,
      engineSettings,
    }),
  };
}

/** Advertises only in LAN mode with mdns on; on loopback nothing multicast is ever created. */
export function advertiseInLanMode(config: KilnConfig, ports: { grpcPort: number; httpPort: number; tls: boolean }): Advertisement | undefined {
  if (!isLanMode(config) || !config.mdns) return undefined;
  return advertise({ ...ports, interfaceAddress: config.host });
}
