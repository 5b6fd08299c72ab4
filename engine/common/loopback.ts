// Whether an address is this machine. One check for gRPC peers, HTTP sockets
// and the host Kiln listens on. grpc-js reports peers as "ipv4:1.2.3.4:5",
// "ipv6:[::1]:5" or "unix:…"; node's http gives bare addresses.
import { isIP } from 'node:net';

export function peerHost(peer: string): string {
  let p = peer.trim();
  if (p.startsWith('ipv4:')) p = p.slice(5);
  else if (p.startsWith('ipv6:')) p = p.slice(5);
  else if (p.startsWith('unix:')) return 'unix';
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(p);
  if (bracket) return bracket[1];
  if (isIP(p)) return p;
  const hostPort = /^(.*):(\d+)$/.exec(p);
  return hostPort && isIP(hostPort[1]) ? hostPort[1] : p;
}

/** True for 127.0.0.0/8, ::1, IPv4-mapped loopback, "localhost" and unix sockets. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const host = peerHost(address).toLowerCase();
  if (host === 'unix' || host === '::1' || host === 'localhost') return true;
  const v4 = host.startsWith('::ffff:') ? host.slice(7) : host;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** True when listening on `host` exposes Kiln beyond this machine (LAN mode). */
export function isLanHost(host: string): boolean {
  return !isLoopbackAddress(host);
}
