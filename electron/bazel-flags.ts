// The .bazelrc lines that point Bazel at this Kiln, as copied from the tray. With
// LAN mode, TLS or require-token they are the lines GET /api/connect and `kiln
// connect` give (engine/lan/connect.ts: endpoint, certificate, token header).
import { isLanMode, type KilnConfig } from '../engine/config';
import { kilnCaPath } from '../engine/lan/access';
import { advertisedHost, bazelrcLines } from '../engine/lan/connect';

// Actions queue behind each other on one machine; Bazel's 60 s default is too short.
const TIMEOUT_LINE = 'build --remote_timeout=3600';

export type FlagsConfig = Pick<KilnConfig, 'host' | 'dataDir' | 'tlsCertFile' | 'requireTokenOnLoopback'>;

export function bazelFlags(grpcUrl: string, config?: FlagsConfig): string {
  const tls = grpcUrl.startsWith('grpcs:');
  const port = Number(/:(\d+)\/?$/.exec(grpcUrl)?.[1]);
  const needsConnectLines = config !== undefined && (isLanMode(config) || tls || config.requireTokenOnLoopback);
  const lines = needsConnectLines && Number.isInteger(port)
    ? bazelrcLines({
        host: advertisedHost(config.host),
        grpcPort: port,
        tls,
        // Kiln's CA, unless the server certificate is the user's own (then the lines say so).
        caPath: tls && config.tlsCertFile === undefined ? kilnCaPath(config.dataDir) : undefined,
      })
    : [`build --remote_executor=${grpcUrl}`];
  return [...lines, TIMEOUT_LINE, ''].join('\n');
}
