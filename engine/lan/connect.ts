// The .bazelrc lines that point Bazel at this Kiln, shared by `kiln connect`
// and the dashboard's Connect view so both always say the same thing.
import { networkInterfaces } from 'node:os';
import { tokenHeaderFlag } from '../common/bazel-flags';

export interface ConnectOptions {
  /** Host or address other machines reach this one by. */
  host: string;
  grpcPort: number;
  tls: boolean;
  /** Kiln's CA file, for --tls_certificate; absent when the server certificate is the user's own. */
  caPath?: string;
  /** A fresh token to embed; without one the header line holds a placeholder. */
  token?: string;
}

export const TOKEN_PLACEHOLDER = 'TOKEN';

export function connectEndpoint(host: string, grpcPort: number, tls: boolean): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `${tls ? 'grpcs' : 'grpc'}://${h}:${grpcPort}`;
}

export function bazelrcLines(o: ConnectOptions): string[] {
  const lines = [`build --remote_executor=${connectEndpoint(o.host, o.grpcPort, o.tls)}`];
  if (o.tls) {
    lines.push(
      o.caPath
        ? `build --tls_certificate=${o.caPath}`
        : '# the server certificate is your own (tls-cert): add build --tls_certificate=YOUR_CA.pem unless clients already trust its issuer',
    );
  }
  // Loopback without require-token needs no header, but a token does no harm and keeps the lines copyable.
  lines.push(`build ${tokenHeaderFlag(o.token ?? TOKEN_PLACEHOLDER)}`);
  return lines;
}

/** The address to hand to other machines when listening on `host` (a wildcard picks this machine's first LAN IPv4). */
export function advertisedHost(host: string): string {
  if (host !== '0.0.0.0' && host !== '::') return host;
  for (const list of Object.values(networkInterfaces())) {
    for (const ni of list ?? []) if (!ni.internal && ni.family === 'IPv4') return ni.address;
  }
  return '127.0.0.1';
}

/** A token name like connect-20250131-142501 that is not taken yet. */
export function connectTokenName(taken: (name: string) => boolean, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  let name = `connect-${stamp}`;
  for (let i = 2; taken(name); i++) name = `connect-${stamp}-${i}`;
  return name;
}
