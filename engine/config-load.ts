// Turns `kiln serve` flags and an optional YAML/JSON config file into a
// validated KilnConfig. Keys are the flag names in kebab-case; flags win over
// the file. Every problem is one ConfigError whose message names the key and
// what is allowed, so the CLI can print a single line and exit 2.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { isLanHost } from './common/loopback';
import {
  cacheBudgetProblem,
  MAX_CONCURRENCY,
  MAX_INVOCATION_HISTORY,
  MAX_INVOCATION_HISTORY_DAYS,
  MIN_CACHE_BUDGET_BYTES,
  MIN_CONCURRENCY,
  MIN_INVOCATION_HISTORY,
} from './common/settings-limits';
import type { SandboxMode } from './common/api-types';
import { defaultConfig, type KilnConfig, type PeerEndpoint, type Placement, type TlsMode } from './config';
import { kindNames } from './common/kind-names';
import { FARM_MODES, isFarmMode, type FarmMode } from './common/farm-modes';
import { readSettings, SettingsError } from './settings';

export class ConfigError extends Error {}

/** The settings a user can give, by flag or config-file key. */
export const CONFIG_KEYS = [
  'host',
  'port',
  'http-port',
  'data-dir',
  'cache-size',
  'concurrency',
  'queue-size',
  'tls',
  'tls-cert',
  'tls-key',
  'tls-client-ca',
  'require-token',
  'mdns',
  'executor',
  'runner',
  'asset-max-size',
  'asset-timeout',
  'sandbox',
  'action-memory',
  'action-cpus',
  'action-processes',
  'action-user',
  'action-uids',
  'mode',
  'upstream',
  'upstream-instance',
  'upstream-header',
  'upstream-tls-ca',
  'placement',
  'invocation-history',
  'invocation-history-days',
  'peers',
  'peer-token',
  'peer-tls-ca',
] as const;
/** Keys that are on/off switches: bare flags on the command line (`--require-token`). */
export const BOOLEAN_KEYS: readonly ConfigKey[] = ['require-token'];
export type ConfigKey = (typeof CONFIG_KEYS)[number];

/** Raw values: strings from flags, anything JSON/YAML can hold from a file. */
export type RawSettings = Partial<Record<ConfigKey, unknown>>;

export interface LoadConfigOptions {
  /** Values from command-line flags (already split from their names). */
  flags?: RawSettings;
  /** Path of a YAML or JSON config file. */
  configFile?: string;
  /** Starting point; defaultConfig() when absent. */
  base?: KilnConfig;
  /** Relative data-dir flags resolve against this. */
  cwd?: string;
  /** Apply {dataDir}/settings.json (saved from the dashboard) under the file and flags; default true. */
  savedSettings?: boolean;
}

export function loadConfig(opts: LoadConfigOptions = {}): KilnConfig {
  const config = { ...(opts.base ?? defaultConfig()) };
  const cwd = opts.cwd ?? process.cwd();
  const given = new Set<string>(opts.base?.explicitKeys);
  const note = (raw: RawSettings) => Object.entries(raw).forEach(([k, v]) => v !== undefined && given.add(k));
  if (opts.configFile) {
    const path = resolve(cwd, opts.configFile);
    // Paths in a file are relative to the file, so it works from any directory.
    const file = readConfigFile(path);
    apply(config, file, dirname(path), `config file ${path}: `);
    note(file);
  }
  apply(config, opts.flags ?? {}, cwd, '');
  note(opts.flags ?? {});
  config.explicitKeys = [...given];
  if (opts.savedSettings !== false) applySavedSettings(config);
  validateTls(config);
  if (config.peers === 'auto' && !isLanHost(config.host)) {
    throw new ConfigError('peers: auto finds peers with mDNS, which runs only in LAN mode; listen beyond loopback (--host 0.0.0.0) or list the peers (grpcs://HOST:PORT,...)');
  }
  return config;
}

/** The keys saved from the dashboard stand in for; a flag or config-file key of that name wins. */
const SAVED_KEYS = {
  lan: 'host',
  concurrency: 'concurrency',
  cacheSizeBytes: 'cache-size',
  mode: 'mode',
  invocationHistory: 'invocation-history',
  invocationHistoryDays: 'invocation-history-days',
} as const;

/** Whether a flag or the config file set what the saved dashboard setting `key` would. */
export function savedSettingOverridden(config: Pick<KilnConfig, 'explicitKeys'>, key: keyof typeof SAVED_KEYS): boolean {
  return config.explicitKeys?.includes(SAVED_KEYS[key]) ?? false;
}

/**
 * The dashboard's saved settings (LAN switch, concurrency, cache budget) for those
 * the flags and the config file left alone (config.explicitKeys). The saved files are
 * read only when something could come from them.
 */
export function applySavedSettings(config: KilnConfig): void {
  const lanOpen = !savedSettingOverridden(config, 'lan') && !isLanHost(config.host);
  const open =
    lanOpen ||
    (Object.keys(SAVED_KEYS) as (keyof typeof SAVED_KEYS)[]).some((key) => key !== 'lan' && !savedSettingOverridden(config, key));
  if (!open) return;
  let saved;
  try {
    saved = readSettings(config.dataDir);
  } catch (err) {
    if (err instanceof SettingsError) throw new ConfigError(err.message);
    throw err;
  }
  if (saved.lan && lanOpen) config.host = '0.0.0.0';
  if (saved.concurrency !== undefined && !savedSettingOverridden(config, 'concurrency')) config.concurrency = saved.concurrency;
  if (saved.cacheSizeBytes !== undefined && !savedSettingOverridden(config, 'cacheSizeBytes')) config.cacheSizeBytes = saved.cacheSizeBytes;
  if (saved.mode !== undefined && !savedSettingOverridden(config, 'mode')) config.mode = saved.mode;
  if (saved.invocationHistory !== undefined && !savedSettingOverridden(config, 'invocationHistory')) config.invocationHistoryMax = saved.invocationHistory;
  if (saved.invocationHistoryDays !== undefined && !savedSettingOverridden(config, 'invocationHistoryDays')) config.invocationHistoryDays = saved.invocationHistoryDays;
}

/** Cross-key rules, one line each. */
function validateTls(config: KilnConfig): void {
  if ((config.tlsCertFile === undefined) !== (config.tlsKeyFile === undefined)) {
    throw new ConfigError('tls-cert and tls-key go together: give both (the certificate and its private key) or neither');
  }
  if (config.tls === 'off' && (config.tlsCertFile || config.tlsClientCaFile)) {
    throw new ConfigError('tls is off, so tls-cert, tls-key and tls-client-ca would be ignored; drop them or use tls: on');
  }
}

export function readConfigFile(path: string): RawSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = parseYaml(text); // YAML 1.2 is a superset of JSON: one parser serves both.
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid YAML or JSON: ${firstLine((err as Error).message)}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(`config file ${path} must be a mapping of settings (${CONFIG_KEYS.join(', ')})`);
  }
  for (const key of Object.keys(data)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      throw new ConfigError(`config file ${path}: unknown key "${key}"; allowed keys are ${CONFIG_KEYS.join(', ')}`);
    }
  }
  return data as RawSettings;
}

function apply(config: KilnConfig, raw: RawSettings, baseDir: string, where: string): void {
  for (const [key, value] of Object.entries(raw) as [ConfigKey, unknown][]) {
    if (value === undefined) continue;
    try {
      switch (key) {
        case 'host':
          config.host = parseHost(value);
          break;
        case 'port':
          config.port = parsePort(value);
          break;
        case 'http-port':
          config.httpPort = parsePort(value);
          break;
        case 'data-dir':
          config.dataDir = resolve(baseDir, parseNonEmpty(value));
          break;
        case 'cache-size':
          config.cacheSizeBytes = parseCacheBudget(value);
          break;
        case 'concurrency':
          config.concurrency = parseCount(value, MIN_CONCURRENCY, MAX_CONCURRENCY);
          break;
        case 'queue-size':
          config.queueSize = parseCount(value, 1, 10_000_000);
          break;
        case 'tls':
          config.tls = parseTlsMode(value);
          break;
        case 'tls-cert':
          config.tlsCertFile = resolve(baseDir, parseNonEmpty(value));
          break;
        case 'tls-key':
          config.tlsKeyFile = resolve(baseDir, parseNonEmpty(value));
          break;
        case 'tls-client-ca':
          config.tlsClientCaFile = resolve(baseDir, parseNonEmpty(value));
          break;
        case 'require-token':
          config.requireTokenOnLoopback = parseBoolean(value);
          break;
        case 'mdns':
          config.mdns = parseBoolean(value);
          break;
        case 'executor':
          config.executor = parseKind(value, 'executor', kindNames('executor'));
          break;
        case 'runner':
          config.runner = parseKind(value, 'runner', kindNames('runner'));
          break;
        case 'asset-max-size':
          config.assetMaxDownloadBytes = parseSize(value);
          break;
        case 'asset-timeout':
          config.assetDefaultTimeoutMs = parseCount(value, 1, 24 * 3600) * 1000;
          break;
        case 'sandbox':
          config.sandbox = parseSandboxMode(value);
          break;
        case 'action-memory':
          config.actionMemoryBytes = parseSize(value);
          break;
        case 'action-cpus':
          config.actionCpus = parseCpus(value);
          break;
        case 'action-processes':
          config.actionProcesses = parseCount(value, 1, 4_194_304);
          break;
        case 'action-user':
          config.actionUser = parseActionUser(value);
          break;
        case 'action-uids':
          config.actionUids = parseUidRange(value);
          break;
        case 'mode':
          config.mode = parseMode(value);
          break;
        case 'upstream':
          config.upstream = parseUpstreamUrl(value);
          break;
        case 'upstream-instance':
          config.upstreamInstance = typeof value === 'string' ? value.trim() : parseNonEmpty(value);
          break;
        case 'upstream-header':
          config.upstreamHeaders = { ...config.upstreamHeaders, ...parseHeaders(value) };
          break;
        case 'upstream-tls-ca':
          config.upstreamTlsCaFile = resolve(baseDir, parseNonEmpty(value));
          break;
        case 'placement':
          config.placement = parsePlacement(value);
          break;
        case 'invocation-history':
          config.invocationHistoryMax = parseCount(value, MIN_INVOCATION_HISTORY, MAX_INVOCATION_HISTORY);
          break;
        case 'invocation-history-days':
          config.invocationHistoryDays = parseCount(value, 1, MAX_INVOCATION_HISTORY_DAYS);
          break;
        case 'peers':
          config.peers = parsePeers(value, baseDir);
          break;
        case 'peer-token':
          config.peerToken = parseNonEmpty(value);
          break;
        case 'peer-tls-ca':
          config.peerTlsCaFile = resolve(baseDir, parseNonEmpty(value));
          break;
        default:
          throw new ConfigError(`unknown setting; allowed are ${CONFIG_KEYS.join(', ')}`);
      }
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`${where}${key}: ${err.message}`);
      throw err;
    }
  }
}

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** "20GiB", "500MB", "1.5TiB", "1048576" → bytes. */
export function parseSize(value: unknown): number {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text);
  const unit = m ? UNITS[(m[2] || 'b').toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new ConfigError(
      `${show(value)} is not a size; use bytes or a number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB (e.g. 20GiB)`,
    );
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 1 || !Number.isSafeInteger(bytes)) throw new ConfigError(`${show(value)} must be at least 1 byte and finite`);
  return bytes;
}

/** A cache-size value: a size, and at least the budget the dashboard may set (the same limit at start and live). */
function parseCacheBudget(value: unknown): number {
  const bytes = parseSize(value);
  if (cacheBudgetProblem(bytes)) throw new ConfigError(`${show(value)} is below the smallest cache budget, 64 MiB (${MIN_CACHE_BUDGET_BYTES} bytes)`);
  return bytes;
}

function parsePort(value: unknown): number {
  const n = toInteger(value);
  if (n === undefined || n < 0 || n > 65535) {
    throw new ConfigError(`${show(value)} is not a port; use an integer from 0 to 65535 (0 picks a free port)`);
  }
  return n;
}

function parseCount(value: unknown, min: number, max: number): number {
  const n = toInteger(value);
  if (n === undefined || n < min || n > max) throw new ConfigError(`${show(value)} is not an integer from ${min} to ${max}`);
  return n;
}

function parseHost(value: unknown): string {
  const host = parseNonEmpty(value);
  if (/\s|\//.test(host)) throw new ConfigError(`${show(value)} is not a host; use an address like 127.0.0.1, ::1 or 0.0.0.0`);
  return host;
}

function parseTlsMode(value: unknown): TlsMode {
  if (value === true) return 'on';
  if (value === false) return 'off';
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (text === 'auto' || text === 'on' || text === 'off') return text;
  throw new ConfigError(`${show(value)} is not a TLS mode; use auto (on in LAN mode), on or off`);
}

function parseCpus(value: unknown): number {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(n > 0) || n > MAX_CONCURRENCY) throw new ConfigError(`${show(value)} is not a number of cores from 0.01 to ${MAX_CONCURRENCY} (e.g. 2 or 0.5)`);
  return n;
}

function parseSandboxMode(value: unknown): SandboxMode {
  if (value === true) return 'on';
  if (value === false) return 'off';
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (text === 'auto' || text === 'on' || text === 'off') return text;
  throw new ConfigError(`${show(value)} is not a sandbox mode; use auto (sandboxed wherever bubblewrap works), on or off`);
}

function parseUidRange(value: unknown): { first: number; last: number } {
  const m = typeof value === 'string' ? /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(value) : null;
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  // 0 is root, and 4294967295 is (uid_t)-1, which means "no change" to the kernel.
  if (!m || first < 1 || last > 4_294_967_294 || first > last) {
    throw new ConfigError(`${show(value)} is not a uid range; use FIRST-LAST, ids from 1 to 4294967294 that no local account uses (e.g. 2000000000-2000000255)`);
  }
  return { first, last };
}

function parseActionUser(value: unknown): string {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
  if (/^(auto|none)$/i.test(text)) return text.toLowerCase();
  if (/^\d+(:\d+)?$/.test(text) || /^[a-z_][a-z0-9_.-]*\$?$/i.test(text)) return text;
  throw new ConfigError(`${show(value)} is not an action user; use auto, none, a user name (e.g. nobody) or uid[:gid] (e.g. 65534:65534)`);
}

function parseUpstreamUrl(value: unknown): string {
  const text = parseNonEmpty(value);
  if (!/^grpcs?:\/\/[^/\s]+:\d{1,5}\/?$/.test(text)) {
    throw new ConfigError(`${show(value)} is not an upstream address; use grpc://HOST:PORT or grpcs://HOST:PORT`);
  }
  return text.replace(/\/$/, '');
}

/** `K=V`, a list of them (repeated flags, a YAML list) or a mapping (config file). */
function parseHeaders(value: unknown): Record<string, string> {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => checkHeader(k, String(v), value)));
  }
  const items = Array.isArray(value) ? value : [value];
  return Object.fromEntries(
    items.map((item) => {
      const text = typeof item === 'string' ? item : '';
      const at = text.indexOf('=');
      if (at < 1) throw new ConfigError(`${show(item)} is not a header; use NAME=VALUE (e.g. x-buildbuddy-api-key=...)`);
      return checkHeader(text.slice(0, at).trim(), text.slice(at + 1).trim(), item);
    }),
  );
}

function checkHeader(name: string, val: string, raw: unknown): [string, string] {
  const lower = name.toLowerCase();
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(lower) || lower.endsWith('-bin')) {
    throw new ConfigError(`${show(raw)}: header name "${name}" must be letters, digits, '.', '_' or '-' (and not a -bin header)`);
  }
  return [lower, val];
}

const PEER_KEYS = ['url', 'token', 'tls-ca', 'status-url', 'name'];

/** `auto`, a comma-separated list of grpc(s):// URLs (the flag), or a list of URLs or {url, token, tls-ca, status-url, name} (a file). */
function parsePeers(value: unknown, baseDir: string): 'auto' | PeerEndpoint[] {
  if (typeof value === 'string' && value.trim().toLowerCase() === 'auto') return 'auto';
  const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
  if (!Array.isArray(items) || items.length === 0) {
    throw new ConfigError(`${show(value)} is not a peer list; use auto, or grpcs://HOST:PORT[,grpcs://HOST:PORT…], or in a file a list of {url, token, tls-ca}`);
  }
  const peers = items.map((item): PeerEndpoint => {
    if (typeof item === 'string') return { url: parsePeerUrl(item) };
    if (!item || typeof item !== 'object') throw new ConfigError(`${show(item)} is not a peer; use a URL or {url, token, tls-ca}`);
    const o = item as Record<string, unknown>;
    const unknown = Object.keys(o).filter((k) => !PEER_KEYS.includes(k));
    if (unknown.length) throw new ConfigError(`peer ${show(o.url)}: unknown key ${unknown.join(', ')}; allowed are ${PEER_KEYS.join(', ')}`);
    const statusUrl = o['status-url'] === undefined ? undefined : parseNonEmpty(o['status-url']).replace(/\/$/, '');
    if (statusUrl && !/^https?:\/\/[^/\s]+:\d{1,5}$/.test(statusUrl)) throw new ConfigError(`peer status-url ${show(statusUrl)}: use http(s)://HOST:PORT of the peer's dashboard`);
    return {
      url: parsePeerUrl(o.url),
      token: o.token === undefined ? undefined : parseNonEmpty(o.token),
      tlsCaFile: o['tls-ca'] === undefined ? undefined : resolve(baseDir, parseNonEmpty(o['tls-ca'])),
      statusUrl,
      name: o.name === undefined ? undefined : parseNonEmpty(o.name),
    };
  });
  const seen = new Set<string>();
  for (const p of peers) {
    if (seen.has(p.url)) throw new ConfigError(`peer ${p.url} is listed twice`);
    seen.add(p.url);
  }
  return peers;
}

function parsePeerUrl(value: unknown): string {
  const text = parseNonEmpty(value);
  if (!/^grpcs?:\/\/[^/\s]+:\d{1,5}\/?$/.test(text)) throw new ConfigError(`${show(value)} is not a peer address; use grpcs://HOST:PORT (or grpc:// without TLS)`);
  return text.replace(/\/$/, '');
}

function parsePlacement(value: unknown): Placement {
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (text === 'local-first' || text === 'upstream' || text === 'local') return text;
  throw new ConfigError(`${show(value)} is not a placement; use local-first (overflow to the upstream), upstream (always) or local`);
}

function parseBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (['true', 'on', 'yes', '1'].includes(text)) return true;
  if (['false', 'off', 'no', '0'].includes(text)) return false;
  throw new ConfigError(`${show(value)} is not a switch; use true or false`);
}

/** A registered executor or runner kind (declared by engine/executor-factory.ts as it registers them). */
function parseKind(value: unknown, what: string, known: string[]): string {
  const name = typeof value === 'string' ? value.trim() : '';
  if (!known.includes(name)) throw new ConfigError(`${show(value)} is not a known ${what}; use ${known.join(' or ')}`);
  return name;
}

function parseNonEmpty(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(`${show(value)} must be a non-empty string`);
  return value.trim();
}

function toInteger(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? value : undefined;
  if (typeof value === 'string' && /^\s*\d+\s*$/.test(value)) return Number(value);
  return undefined;
}

function show(value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : JSON.stringify(value) ?? String(value);
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

function parseMode(value: unknown): FarmMode {
  if (!isFarmMode(value)) throw new ConfigError(`"${String(value)}" is not a mode; use ${FARM_MODES.join(', ')}`);
  return value;
}
