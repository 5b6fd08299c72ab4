// The engine's settings: one typed object, with defaults a user never has to set.
// Parsing and validation of flags and config files lives in config-load.ts.
import { homedir, cpus, platform } from 'node:os';
import { join } from 'node:path';
import type { SandboxMode } from './common/api-types';
import { isLanHost } from './common/loopback';
import { MAX_CONCURRENCY } from './common/settings-limits';
import type { FarmMode } from './common/farm-modes';

export interface KilnConfig {
  /** Interface to listen on; 127.0.0.1 unless the user opts into the LAN. */
  host: string;
  /** gRPC port; 0 picks a free one. */
  port: number;
  /** Dashboard/HTTP API port; 0 picks a free one. */
  httpPort: number;
  dataDir: string;
  /** CAS size budget in bytes; least recently used blobs are evicted beyond it. */
  cacheSizeBytes: number;
  /** Worker slots: actions running at once. */
  concurrency: number;
  /** Actions waiting for a slot before Execute answers RESOURCE_EXHAUSTED. */
  queueSize: number;
  executionEnabled: boolean;
  /** Timeout for actions that set none, and the largest one a client may ask for. */
  defaultActionTimeoutMs: number;
  maxActionTimeoutMs: number;
  /** How long finished operations can still be found by WaitExecution/GetOperation. */
  operationRetentionMs: number;
  /**
   * How long a queued or running action may go without anyone watching it (no
   * Execute/WaitExecution stream, no GetOperation/WaitExecution call) before it
   * is cancelled. Bazel seldom calls CancelOperation. 0 never cancels.
   */
  orphanTimeoutMs: number;
  /** Which executor runs actions (engine/executor-factory.ts): `local` runs them on this machine. */
  executor: string;
  /** How a local executor runs a process (engine/executor-factory.ts): `process` through the launcher. */
  runner: string;
  /** Advertised max_batch_total_size_bytes. */
  maxBatchTotalSizeBytes: number;
  /** Run actions in the bubblewrap sandbox (engine/sandbox/): auto = wherever bubblewrap works. */
  sandbox: SandboxMode;
  /** Memory a sandboxed action may use unless its platform says `memory`; undefined: half the machine. */
  actionMemoryBytes?: number;
  /** CPU cores a sandboxed action may use unless its platform says `cpus`; undefined: no limit. */
  actionCpus?: number;
  /** Processes and threads a sandboxed action may have at once. */
  actionProcesses: number;
  /**
   * Who actions run as (engine/sandbox/action-user.ts): `auto` (when Kiln is
   * root, a uid of its own per action from actionUids; otherwise Kiln's own user),
   * `none` (Kiln's own user), a user name, or `uid[:gid]`.
   */
  actionUser: string;
  /** The uids (and gids of the same numbers) `action-user: auto` gives running actions, one each, when Kiln is root; undefined: 2000000000-2000000255. */
  actionUids?: { first: number; last: number };
  /** Require a token from loopback clients too (LAN mode always requires one). */
  requireTokenOnLoopback: boolean;
  /** TLS for gRPC and the dashboard: `auto` is on in LAN mode (or with tlsCertFile), off on loopback. */
  tls: TlsMode;
  /** A certificate and key of the user's own instead of the one Kiln's CA issues. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Another CA whose client certificates are accepted (Kiln's own CA always is). */
  tlsClientCaFile?: string;
  /** Advertise on the LAN with mDNS; only ever done in LAN mode. */
  mdns: boolean;
  /** Remote Asset API: largest download Kiln makes for a client. */
  assetMaxDownloadBytes: number;
  /** Remote Asset API: download timeout when the request sets none (a request may ask for up to an hour). */
  assetDefaultTimeoutMs: number;
  /** Invocations the history keeps (and the journal saves), newest first; older ones are dropped. */
  invocationHistoryMax: number;
  /** Days an invocation is kept in the history and the journal. */
  invocationHistoryDays: number;
  /**
   * How hard Kiln may use this machine (engine/governor/): `polite` (background
   * priority, slots follow the machine; the desktop app's default), `normal`
   * (the configured slots; `kiln serve`'s default) or `all-out` (every core).
   */
  mode: FarmMode;
  /** Another REAPI server (`grpc://HOST:PORT` or `grpcs://`) behind the local cache and executor; engine/upstream/. */
  upstream?: string;
  /** Instance name to use on the upstream (default: the empty instance). */
  upstreamInstance: string;
  /** Headers sent with every upstream call (an API key, say). */
  upstreamHeaders: Record<string, string>;
  /** A CA (PEM) the upstream's TLS certificate is checked against, instead of the system's. */
  upstreamTlsCaFile?: string;
  /** Where actions run when there is an upstream: `local-first` (overflow), `upstream` (always) or `local`. */
  placement: Placement;
  /** Actions sent to the upstream at once, on top of the local slots (not a user setting yet). */
  upstreamSlots: number;
  /**
   * Other Kilns that take this one's overflow (engine/peers/): `auto` finds them with
   * mDNS (LAN mode), or a list of endpoints with their tokens. Undefined: none.
   */
  peers?: 'auto' | PeerEndpoint[];
  /** The token sent to peers that have none of their own (and to every peer `auto` finds). */
  peerToken?: string;
  /** A CA bundle (PEM) peers' certificates are checked against, for peers without their own `tls-ca`. */
  peerTlsCaFile?: string;
  /**
   * Keys a flag or the config file set (config-load.ts fills it in, e.g. "concurrency",
   * "cache-size", "host"). Settings saved from the dashboard never override these at start.
   */
  explicitKeys?: string[];
}

export type TlsMode = 'auto' | 'on' | 'off';

/** One peer Kiln from the `peers:` list. */
export interface PeerEndpoint {
  /** grpc://HOST:PORT or grpcs://HOST:PORT */
  url: string;
  /** A token the peer made for this Kiln (`kiln token add` on the peer); falls back to peer-token. */
  token?: string;
  /** The CA (PEM) the peer's certificate chains to (its {data-dir}/tls/ca.pem); falls back to peer-tls-ca. */
  tlsCaFile?: string;
  /** The peer's dashboard API, for its free slots; default: same host, gRPC port + 1, https with grpcs. */
  statusUrl?: string;
  /** How the dashboard names it; default HOST:PORT. */
  name?: string;
}
export type Placement = 'local-first' | 'upstream' | 'local';

/** LAN mode: listening beyond loopback, so every remote call needs a token. */
export function isLanMode(config: Pick<KilnConfig, 'host'>): boolean {
  return isLanHost(config.host);
}

export function tlsEnabled(config: Pick<KilnConfig, 'host' | 'tls' | 'tlsCertFile'>): boolean {
  if (config.tls !== 'auto') return config.tls === 'on';
  return isLanMode(config) || config.tlsCertFile !== undefined;
}

export function defaultDataDir(): string {
  const home = homedir();
  if (platform() === 'darwin') return join(home, 'Library', 'Application Support', 'Kiln');
  if (platform() === 'win32') return join(process.env.LOCALAPPDATA ?? join(home, 'AppData', 'Local'), 'Kiln');
  return join(process.env.XDG_DATA_HOME ?? join(home, '.local', 'share'), 'kiln');
}

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

export function defaultConfig(): KilnConfig {
  return {
    host: '127.0.0.1',
    port: 8980,
    httpPort: 8981,
    dataDir: defaultDataDir(),
    cacheSizeBytes: 20 * GiB,
    concurrency: Math.min(MAX_CONCURRENCY, Math.max(1, cpus().length)),
    queueSize: 10_000,
    executionEnabled: true,
    defaultActionTimeoutMs: 15 * 60_000,
    maxActionTimeoutMs: 3 * 60 * 60_000,
    operationRetentionMs: 10 * 60_000,
    orphanTimeoutMs: 10 * 60_000,
    executor: 'local',
    runner: 'process',
    maxBatchTotalSizeBytes: 4 * MiB,
    sandbox: 'auto',
    actionProcesses: 8192,
    actionUser: 'auto',
    requireTokenOnLoopback: false,
    tls: 'auto',
    mdns: true,
    assetMaxDownloadBytes: 4 * GiB,
    assetDefaultTimeoutMs: 5 * 60_000,
    invocationHistoryMax: 2_000,
    invocationHistoryDays: 7,
    mode: 'normal',
    upstreamInstance: '',
    upstreamHeaders: {},
    placement: 'local-first',
    upstreamSlots: 16,
  };
}
