// The HTTP side of LAN mode: the access policy, TLS material and the LAN routes
// (tokens, connect lines, settings) the dashboard server is started with.
import { isLanMode, type KilnConfig } from '../config';
import type { Access } from '../lan/access';
import { LanRoutes, type EngineSettingsHooks } from './lan-routes';
import type { HttpStartOptions } from './observability';

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
