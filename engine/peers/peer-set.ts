// The peers of this Kiln: the ones `peers:` lists, or with `peers: auto` the
// Kilns mDNS finds on the LAN (looked for again every half minute; a Kiln that
// stops advertising is dropped once nothing of ours runs there). Each gets
// the token and CA the configuration gives it, or peer-token / peer-tls-ca.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { Clock } from '../clock';
import type { PeerStatus } from '../common/api-types';
import type { KilnConfig, PeerEndpoint } from '../config';
import { discover, type DiscoveredKiln } from '../lan/discovery';
import type { BlobStore } from '../store/blob-store';
import { Peer, type PeerOptions } from './peer';

export interface PeerSetOptions {
  config: Pick<KilnConfig, 'peers' | 'peerToken' | 'peerTlsCaFile' | 'host'>;
  store: BlobStore;
  clock: Clock;
  /** This Kiln's gRPC port, so mDNS does not offer it to itself. */
  ownGrpcPort: () => number;
  onChange?: () => void;
  log?: (line: string) => void;
  /** Status poll interval (default 2 s) and mDNS interval (default 30 s). */
  pollMs?: number;
  discoverMs?: number;
  /** Tests: how peers' status is read, and how the LAN is searched. */
  readStatus?: PeerOptions['readStatus'];
  discover?: () => Promise<DiscoveredKiln[]>;
}

const DEFAULT_POLL_MS = 2_000;
const DEFAULT_DISCOVER_MS = 30_000;

export class PeerSet {
  private readonly peers = new Map<string, Peer>();
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly opts: PeerSetOptions) {
    const { peers } = opts.config;
    if (peers === 'auto') {
      this.timer = setInterval(() => void this.rediscover(), opts.discoverMs ?? DEFAULT_DISCOVER_MS);
      this.timer.unref();
      void this.rediscover();
    } else {
      for (const p of peers ?? []) this.add(p, 'config');
    }
  }

  /** The peers as they are now. */
  targets(): Peer[] {
    return [...this.peers.values()];
  }

  /** Slots all peers offer us now (on top of the local ones). */
  slots(): number {
    return this.targets().reduce((sum, p) => sum + p.share(), 0);
  }

  status(): PeerStatus[] {
    return this.targets().map((p) => p.status());
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const p of this.peers.values()) p.close();
  }

  private add(endpoint: PeerEndpoint, source: PeerStatus['source']): void {
    const { config } = this.opts;
    const m = /^(grpcs?):\/\/(.+):(\d+)$/.exec(endpoint.url)!;
    const tls = m[1] === 'grpcs';
    this.peers.set(
      endpoint.url,
      new Peer({
        name: endpoint.name ?? `${m[2]}:${m[3]}`,
        url: endpoint.url,
        statusUrl: endpoint.statusUrl ?? `${tls ? 'https' : 'http'}://${m[2]}:${Number(m[3]) + 1}`,
        token: endpoint.token ?? config.peerToken,
        tlsCa: readCa(endpoint.tlsCaFile ?? config.peerTlsCaFile),
        source,
        store: this.opts.store,
        clock: this.opts.clock,
        pollMs: this.opts.pollMs ?? DEFAULT_POLL_MS,
        onChange: this.opts.onChange,
        log: this.opts.log,
        readStatus: this.opts.readStatus,
      }),
    );
  }

  private async rediscover(): Promise<void> {
    let found: DiscoveredKiln[];
    try {
      const iface = this.opts.config.host === '0.0.0.0' || this.opts.config.host === '::' ? undefined : this.opts.config.host;
      found = await (this.opts.discover ?? (() => discover({ interfaceAddress: iface })))();
    } catch (err) {
      this.opts.log?.(`kiln: looking for peers with mDNS failed: ${(err as Error).message}`);
      return;
    }
    if (this.closed) return;
    const own = ownAddresses(this.opts.config.host);
    const seen = new Set<string>();
    for (const k of found) {
      const host = k.addresses[0] ?? k.host;
      if (k.grpcPort === this.opts.ownGrpcPort() && (own.has(host) || k.addresses.some((a) => own.has(a)))) continue;
      const url = `${k.tls ? 'grpcs' : 'grpc'}://${host}:${k.grpcPort}`;
      seen.add(url);
      if (this.peers.has(url)) continue;
      const statusUrl = k.httpPort ? `${k.tls ? 'https' : 'http'}://${host}:${k.httpPort}` : undefined;
      this.add({ url, statusUrl, name: k.name }, 'mdns');
      this.opts.log?.(`kiln: found peer ${k.name} at ${url}`);
    }
    let changed = false;
    for (const [url, peer] of this.peers) {
      if (seen.has(url) || peer.status().running > 0) continue;
      peer.close();
      this.peers.delete(url);
      changed = true;
    }
    if (changed) this.opts.onChange?.();
  }
}

function readCa(file: string | undefined): Buffer | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`peers: cannot read the CA file ${file}: ${(err as Error).message}`);
  }
}

/** The addresses this machine answers on, to recognise its own advertisement. */
function ownAddresses(host: string): Set<string> {
  const own = new Set<string>([host, '127.0.0.1']);
  for (const list of Object.values(networkInterfaces())) for (const ni of list ?? []) own.add(ni.address);
  return own;
}
