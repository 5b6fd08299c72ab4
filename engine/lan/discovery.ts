// mDNS/DNS-SD so Bazel users on the LAN can find Kiln (`kiln discover`).
// Only ever started in LAN mode: on loopback Kiln sends no multicast at all.
import { Bonjour } from 'bonjour-service';
import { hostname } from 'node:os';

export const SERVICE_TYPE = 'kiln';

export interface AdvertiseOptions {
  grpcPort: number;
  httpPort?: number;
  tls: boolean;
  /** Instance label; defaults to the host name. */
  name?: string;
  /** Address of the interface to advertise on (the listen address); all interfaces when unset or 0.0.0.0. */
  interfaceAddress?: string;
}

export interface Advertisement {
  stop(): Promise<void>;
}

export interface DiscoveredKiln {
  name: string;
  host: string;
  addresses: string[];
  grpcPort: number;
  httpPort?: number;
  tls: boolean;
  /** The endpoint for --remote_executor. */
  endpoint: string;
}

function mdnsOptions(interfaceAddress?: string): object {
  // Bind the wildcard (a socket bound to a unicast address never sees multicast) but
  // join the group and send only on the chosen interface.
  return interfaceAddress && interfaceAddress !== '0.0.0.0' && interfaceAddress !== '::' ? { interface: interfaceAddress, bind: '0.0.0.0' } : {};
}

export function advertise(opts: AdvertiseOptions): Advertisement {
  const bonjour = new Bonjour(mdnsOptions(opts.interfaceAddress) as never, (err: unknown) => {
    console.error(`kiln: mDNS advertisement failed: ${err instanceof Error ? err.message : String(err)}`);
  });
  bonjour.publish({
    name: opts.name ?? `Kiln on ${hostname()}`,
    type: SERVICE_TYPE,
    port: opts.grpcPort,
    txt: { v: '1', tls: opts.tls ? '1' : '0', ...(opts.httpPort ? { http: String(opts.httpPort) } : {}) },
    disableIPv6: true,
  });
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        bonjour.unpublishAll(() => bonjour.destroy(() => resolve()));
      }),
  };
}

export async function discover(opts: { timeoutMs?: number; interfaceAddress?: string } = {}): Promise<DiscoveredKiln[]> {
  const bonjour = new Bonjour(mdnsOptions(opts.interfaceAddress) as never);
  const found = new Map<string, DiscoveredKiln>();
  const browser = bonjour.find({ type: SERVICE_TYPE }, (svc) => {
    const txt = (svc.txt ?? {}) as Record<string, string>;
    const addresses = (svc.addresses ?? []).filter((a: string) => !a.includes(':'));
    const host = addresses[0] ?? svc.host;
    const tls = txt.tls === '1';
    found.set(`${svc.name}@${host}:${svc.port}`, {
      name: svc.name,
      host: svc.host,
      addresses,
      grpcPort: svc.port,
      httpPort: txt.http ? Number(txt.http) : undefined,
      tls,
      endpoint: `${tls ? 'grpcs' : 'grpc'}://${host}:${svc.port}`,
    });
  });
  await new Promise((r) => setTimeout(r, opts.timeoutMs ?? 3000));
  browser.stop();
  await new Promise<void>((resolve) => bonjour.destroy(() => resolve()));
  return [...found.values()];
}
