// Every JSON shape the dashboard HTTP API returns, and the Server-Sent Event payloads.
// Pure types, importing only other declarations of engine/common: the Svelte
// renderer imports this file type-only, and so do metrics and history, which
// build these records. Stable contract: add optional fields, never rename or remove.
import type { ActionChangeKind, ActionOutcome, ActionOutputSummary, ActionStage, ActionState, ActionTiming, LogStreamName } from './action-vocabulary';
import type { ActionRole } from './action-role';
import type { SettingName } from './settings-limits';
import type { ActionSignal, FarmStatus, HealthProblem, HealthReport } from './farm-modes';

export type { ActionChangeKind, ActionOutcome, ActionOutputSummary, ActionRole, ActionStage, ActionState, ActionTiming, LogStreamName, SettingName };

/** Times are milliseconds since the epoch; durations are milliseconds; sizes are bytes. */

/** GET /api/status */
export interface ApiStatus {
  /** The engine is up and answering gRPC. */
  serving: boolean;
  /** The execution switch: false means Execute is refused and the cache still serves. */
  executing: boolean;
  /** e.g. "grpc://127.0.0.1:8980" — what to put in --remote_executor. */
  grpcUrl: string;
  /** e.g. "http://127.0.0.1:8981/" */
  httpUrl: string;
  version: string;
  uptimeMs: number;
  /** Interface the engine listens on. */
  host: string;
  /** Present when exposed beyond loopback. */
  lan?: { addresses: string[]; tokenRequired: boolean };
  /** gRPC and the dashboard are served over TLS (grpcs://, https://). */
  tls?: boolean;
  /** Loopback callers need a token too (--require-token). */
  tokenRequiredOnLoopback?: boolean;
  /** Instance names seen so far (empty string is the default instance). */
  instanceNames?: string[];
  /** Worker slots. */
  concurrency: number;
  cacheBudgetBytes: number;
  /** The polite farm: mode, the slots taking work and why, pause, slots over time. */
  farm?: FarmStatus;
  /** Named problems, worst first (the same as GET /api/health). */
  health?: HealthProblem[];
  /** Present when Kiln has an upstream REAPI server (--upstream). */
  upstream?: UpstreamStatus;
  /** Actions running on this machine now (peers read it to see this Kiln's free slots). */
  running?: number;
  /** Present when Kiln has peers (--peers): each peer Kiln that takes its overflow. */
  peers?: PeerStatus[];
  /** The execution platforms this Kiln runs: the platform properties that select each runner. */
  platforms?: ApiExecutionPlatform[];
  /** Whether actions run in the sandbox, and why (not); absent when the executor was not built from the configuration. */
  sandbox?: ApiSandbox;
}

/** One way this Kiln runs actions, and the platform properties that choose it ({} = the default). */
export interface ApiExecutionPlatform {
  properties: Record<string, string>;
  runner: string;
}

/** The `sandbox:` setting: auto sandboxes wherever bubblewrap works, on always (or refuses to start), off never. */
export type SandboxMode = 'auto' | 'on' | 'off';

/** The sandbox as decided at start (GET /api/status `sandbox`). */
export interface ApiSandbox {
  enabled: boolean;
  mode: SandboxMode;
  /** What sandboxes ("bubblewrap"), when enabled. */
  runner?: string;
  /** Why it is on or off, in words a person can act on. */
  reason: string;
  /** Which per-action limits are enforced ("cgroup v1: memory, cpus, pids"), or why none. */
  limits?: string;
  /** The network rule for actions. */
  network?: string;
  /** Who actions run as ("nobody (65534:65534)", or Kiln's own user and why): action-user. */
  actionUser?: string;
}

/** The upstream REAPI server as Kiln sees it (GET /api/status). */
export interface UpstreamStatus {
  url: string;
  /** Where actions run: local-first, upstream or local. */
  placement: string;
  /** Undefined until the first call answered or failed. */
  reachable?: boolean;
  /** Why it is unreachable, in words a person can act on. */
  problem?: string;
  /** When `reachable` last changed. */
  since?: number;
  /** Blobs and action results waiting to be copied to the upstream (write-through queue). */
  pendingUploads?: number;
  /** Actions this Kiln may send it at once, and how many of ours run there now. */
  slots?: number;
  running?: number;
  /** How long its last reachability check took. */
  roundTripMs?: number;
}

/** A peer Kiln as this one sees it (GET /api/status `peers`). */
export interface PeerStatus {
  /** As actions' `ranOn` names it: "peer:NAME". */
  name: string;
  url: string;
  /** How it was found: listed in the configuration, or by mDNS. */
  source: 'config' | 'mdns';
  /** Undefined until its status was first read. */
  reachable?: boolean;
  /** Why it is unreachable or takes nothing, in words a person can act on. */
  problem?: string;
  /** Slots it offers us now (its free slots; less when its person is busy). */
  slots: number;
  /** Our actions running there now. */
  running: number;
  /** Its farm mode, execution switch and pause, as it reported them. */
  mode?: string;
  executing?: boolean;
  paused?: boolean;
  /** The last status read's round trip. */
  roundTripMs?: number;
  /** When its status was last read successfully. */
  lastSeen?: number;
}

/** The action currently occupying a worker slot. */
export interface SlotAction {
  id: string;
  mnemonic?: string;
  target?: string;
  argv0?: string;
  /** When the slot became busy with this action. */
  since: number;
}

export interface SlotSnapshot {
  slot: number;
  busy: boolean;
  current?: SlotAction;
  /** Time-weighted busy fraction in [0, 1]. */
  utilization1m: number;
  utilization1h: number;
}

export interface HistogramBucket {
  /** Inclusive upper bound in the histogram's unit; the last bucket is Infinity serialized as null. */
  le: number | null;
  /** Cumulative count of observations ≤ le. */
  count: number;
}

export interface HistogramSnapshot {
  unit: 'ms';
  buckets: HistogramBucket[];
  sum: number;
  count: number;
}

export interface HitRate {
  hits: number;
  misses: number;
  /** hits / (hits + misses); null when nothing was looked up yet. */
  rate: number | null;
}

/** One entry of GET /api/cache/largest. */
export interface LargestBlobItem {
  hash: string;
  size: number;
  /** Digest function, "sha256" or "blake3". */
  fn: string;
}

/** GET /api/cache/largest?limit=N (1 to 200, default 20): the largest CAS blobs, largest first. */
export interface LargestBlobs {
  items: LargestBlobItem[];
  /** Bytes in the CAS when the list was made, for each blob's share. */
  storeBytes: number;
  /** When the list was made (epoch ms); it is reused for a couple of seconds. */
  at: number;
}

/** GET /api/metrics, and the `metrics` SSE event. */
export interface MetricsSnapshot {
  at: number;
  queueDepth: number;
  running: number;
  slots: SlotSnapshot[];
  /** Mean of per-slot utilization. */
  utilization1m: number;
  utilization1h: number;
  actionCache: HitRate;
  /** From FindMissingBlobs lookups: a hit is a blob the client did not need to upload. */
  cas: HitRate;
  bytes: {
    /** Totals since start. */
    inTotal: number;
    outTotal: number;
    /** Bytes per second over the last ~10 s. */
    inRate: number;
    outRate: number;
  };
  store: {
    bytes: number;
    budgetBytes: number;
    blobs: number;
    evictions: number;
  };
  actions: {
    /** Finished actions per second over the last minute. */
    perSecond: number;
    finishedTotal: number;
    byOutcome: Record<ActionOutcome, number>;
  };
  histograms: {
    /** Queued → finished. */
    durationMs: HistogramSnapshot;
    /** Queued → started. */
    queueTimeMs: HistogramSnapshot;
  };
  /** Sampled in the background every few seconds; null until the first sample. */
  host: HostSnapshot | null;
  authRejections: number;
  executionEnabled: boolean;
}

export interface HostSnapshot {
  sampledAt: number;
  /** CPU load in [0, 1]. */
  cpu: number;
  cores: number;
  memUsedBytes: number;
  memTotalBytes: number;
  /** The disk holding the data directory. */
  diskUsedBytes: number;
  diskTotalBytes: number;
}

/** One row in the action list. */
export interface ActionSummary {
  /** Operation id (the part after "operations/"). */
  id: string;
  state: ActionState;
  /** Present once finished. */
  outcome?: ActionOutcome;
  /** Answered from the action cache without running. */
  cached: boolean;
  mnemonic?: string;
  target?: string;
  argv0?: string;
  exitCode?: number;
  /** Current stage, useful while running. */
  stage: ActionStage;
  /** Running but stopped (SIGSTOP), by a person or the farm's pause. */
  stopped?: boolean;
  queuedAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** Total so far while running; final once finished. */
  durationMs?: number;
  instance: string;
  actionDigest: string;
  slot?: number;
  /** The Bazel invocation (tool_invocation_id) that asked for it; see GET /api/invocations/{id}. */
  invocationId?: string;
  /** A test's run, or its test.xml / coverage step (same label and mnemonic, different job). */
  role?: ActionRole;
  /** RequestMetadata.configuration_id: the build configuration of its target. */
  configurationId?: string;
}

/** GET /api/actions/{id} */
export interface ActionDetail extends ActionSummary {
  argv: string[];
  env: Record<string, string>;
  platform: Record<string, string>;
  /** Platform property names nothing in Kiln reads: ignored, as REAPI servers do, but shown. */
  ignoredPlatform?: string[];
  workingDirectory: string;
  outputPaths: string[];
  timeoutMs?: number;
  doNotCache?: boolean;
  inputFiles?: number;
  inputBytes?: number;
  /** Where the action ran: 'local' (this machine), 'upstream' (the upstream REAPI cluster) or 'peer:NAME' (a peer Kiln). */
  ranOn?: string;
  outputs: ActionOutputSummary[];
  timing?: ActionTiming;
  stdoutDigest?: string;
  stderrDigest?: string;
  message?: string;
  /** Signals and cancels sent to it from the dashboard, the API or the farm's pause, oldest first. */
  controls?: ActionControlRecord[];
  /** Whether GET /api/actions/{id}/stdout|stderr can still serve the log (retention). */
  logs: { stdout: boolean; stderr: boolean };
}

/** One signal or cancel an action got, and what came of it. */
export interface ActionControlRecord {
  at: number;
  control: 'signal' | 'cancel';
  signal?: ActionSignal;
  /** Who sent it: "the dashboard", "the farm pause"… */
  by: string;
  /** "paused (SIGSTOP)", "sent SIGTERM", "cancelled while running…" */
  result: string;
}

/** GET /api/actions?state=&outcome=&q=&cursor=&limit= — newest first. */
export interface ActionPage {
  items: ActionSummary[];
  /** Pass as ?cursor= for the next (older) page; absent at the end. */
  nextCursor?: string;
  /** Number of actions matching the filter. */
  total: number;
}

/** Every non-2xx JSON response. */
/** One Remote Asset fetch (Bazel's remote downloader asking Kiln for a URL). */
export interface AssetFetchRecord {
  /** ms since the epoch, when it was answered */
  at: number;
  uri: string;
  /** hit: served from the CAS; downloaded: fetched from the URL now; failed: see message */
  outcome: 'hit' | 'downloaded' | 'failed';
  bytes?: number;
  durationMs: number;
  /** Bazel's invocation id (RequestMetadata), so one build's fetches can be listed together. */
  toolInvocationId?: string;
  message?: string;
}

/** GET /api/assets[?invocation=ID]: recent fetches, newest first. */
export interface AssetFetchList {
  items: AssetFetchRecord[];
}

export interface ApiError {
  error: { code: number; status: string; message: string };
}

/**
 * POST /api/session (with the bearer token) → 201: a ticket for one GET /api/events?ticket=…
 * EventSource cannot send headers, so this is how a browser that needs a token opens the
 * live stream. Random, single-use, short-lived, and accepted nowhere else.
 */
export interface EventTicket {
  ticket: string;
  expiresInMs: number;
}

/** POST /api/execution body and response. */
export interface ExecutionRequest {
  enabled: boolean;
}
export interface ExecutionResponse {
  executing: boolean;
}

// ---- Server-Sent Events on GET /api/events?follow=ID,ID ----
// Each event is `event: <name>\ndata: <JSON>\n\n`. Heartbeats are SSE comments (": hb").

export interface SseMetricsEvent {
  event: 'metrics';
  data: MetricsSnapshot;
}

export interface SseActionEvent {
  event: 'action';
  data: { kind: ActionChangeKind; action: ActionSummary };
}

/** A chunk of a followed action's log; data is UTF-8 text (may split a multi-byte character only at chunk edges, decoded leniently). */
export interface LogChunk {
  id: string;
  stream: LogStreamName;
  /** Byte offset of this chunk in the log. */
  offset: number;
  data: string;
}
export interface SseLogEvent {
  event: 'log';
  data: LogChunk;
}

/**
 * The client fell behind (its socket buffer passed the server's bound): bytes
 * [from, to) were skipped and the stream continues at `to`. Fetch the whole log from
 * GET /api/actions/{id}/{stream} if needed.
 */
export interface LogGap {
  id: string;
  stream: LogStreamName;
  from: number;
  to: number;
}
export interface SseLogGapEvent {
  event: 'log-gap';
  data: LogGap;
}

/** Both logs of a followed action are drained and the action has finished. */
export interface SseLogEndEvent {
  event: 'log-end';
  data: { id: string; stream: LogStreamName; bytes: number };
}

export interface SseExecutionEvent {
  event: 'execution';
  data: { executing: boolean; at: number };
}

/** The farm's mode, slots, reason or pause changed (no history: append the point yourself). */
export interface SseFarmEvent {
  event: 'farm';
  data: FarmStatus;
}

/** The health report changed. */
export interface SseHealthEvent {
  event: 'health';
  data: HealthReport;
}

export type SseEvent =
  | SseFarmEvent
  | SseHealthEvent
  | SseMetricsEvent
  | SseActionEvent
  | SseLogEvent
  | SseLogGapEvent
  | SseLogEndEvent
  | SseExecutionEvent;
export type SseEventName = SseEvent['event'];

// ---- LAN mode: tokens, the CA, connect lines, saved settings ----

/** GET /api/tls/ca.pem serves Kiln's CA certificate (PEM, no token needed; 404 when TLS is off). */

/** One access token; its value is never shown again after creation. */
export interface TokenInfo {
  name: string;
  /** ISO 8601 */
  createdAt: string;
}

/** GET /api/tokens */
export interface TokenList {
  tokens: TokenInfo[];
}

/** POST /api/tokens body. Names: 1-64 of letters, digits, '.', '_', '@', '-'. */
export interface TokenCreateRequest {
  name: string;
}

/** POST /api/tokens response (201): the only time the token's value is shown. */
export interface TokenCreated extends TokenInfo {
  token: string;
  /** The Bazel flag that sends it: --remote_header=authorization="Bearer …" (quoted, so a .bazelrc keeps it one word) */
  bazelFlag: string;
}

/** DELETE /api/tokens/{name} response. */
export interface TokenRevoked {
  revoked: string;
}

/**
 * GET /api/connect: the .bazelrc lines for this Kiln, with the placeholder TOKEN;
 * POST /api/connect makes a fresh token (named connect-YYYYMMDD-HHMMSS) and puts it in.
 */
export interface ConnectInfo {
  /** e.g. "grpcs://192.168.1.20:8980" */
  endpoint: string;
  tls: boolean;
  /** Where to download Kiln's CA ("/api/tls/ca.pem"); absent when TLS is off or the certificate is the user's own. */
  caUrl?: string;
  /** The CA's path on the Kiln machine (what --tls_certificate names when Bazel runs there). */
  caPath?: string;
  /** Lines for .bazelrc, in order. */
  bazelrc: string[];
  /** POST only: the token made for these lines (shown once). */
  token?: TokenCreated;
}

/** PUT /api/settings body (any subset). */
export interface SettingsRequest {
  /** Serve the office LAN (listen on 0.0.0.0) from the next start. */
  lan?: boolean;
  /** Worker slots, 1 to 1024. Applies at once (running actions finish) and is saved. */
  concurrency?: number;
  /** CAS budget: bytes, or a size like "20GiB"; at least 64 MiB. Applies at once (evicting down to it) and is saved. */
  cacheSize?: number | string;
  /** Invocations the history keeps, 10 to 100,000. Applies at once (the oldest beyond it go) and is saved. */
  invocationHistory?: number;
  /** Days an invocation is kept, 1 to 365. Applies at once and is saved. */
  invocationHistoryDays?: number;
}

/** GET and PUT /api/settings. Saved in {dataDir}/settings.json; flags and the config file still win. */
export interface SettingsResponse {
  /** The saved switch. */
  lan: boolean;
  /** Whether this running Kiln is in LAN mode now. */
  lanActive: boolean;
  /** True when the saved settings differ from what is running: they apply when Kiln restarts. */
  restartRequired: boolean;
  message: string;
  /** Worker slots of the running Kiln. */
  concurrency?: number;
  /** Cache budget of the running Kiln, bytes. */
  cacheSizeBytes?: number;
  /** Invocations the history keeps (with their build events), and for how many days. */
  invocationHistory?: number;
  invocationHistoryDays?: number;
  /** What settings.json holds: used at the next start for settings no flag or config-file key sets. */
  saved?: { lan?: boolean; concurrency?: number; cacheSizeBytes?: number; invocationHistory?: number; invocationHistoryDays?: number };
  /** PUT only: the settings of the request that took effect at once. */
  appliedNow?: SettingName[];
  /** PUT only: the settings of the request that take effect when Kiln restarts. */
  appliedAtRestart?: SettingName[];
  /** Settings a flag or the config file sets at start, so their saved values are not used then. */
  fixedAtStart?: SettingName[];
}

// ---- Invocations (engine/invocations): GET /api/invocations, /api/invocations/{id}, /api/invocations/{id}/actions ----
export type { InvocationCounts, InvocationPage, InvocationState, InvocationSummary, RequestOrigin } from './invocation-types';
export type { BuildEventSummary, BuildFile, InvocationTarget, TargetOutcome, TestRun, TestTargetResult } from './invocation-types';
export type { MetricsHistory, MetricsPoint, MetricsWindow } from './metrics-history-types';
