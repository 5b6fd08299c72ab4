// The import direction inside engine/, checked by `npm run lint` (dependency-cruiser).
//
// Each part of the engine names the parts it may import; anything else is an
// error that names the importing file and the imported one. Lower parts never
// know about higher ones, so a shared type goes down into engine/common rather
// than up into whoever happens to use it first. Type-only imports count too.
//
// To add a folder under engine/, give it a row here; a file outside every row
// may not import the engine at all, so a forgotten row fails the lint.

/** Where each part of the engine lives: a folder or a set of files at engine/'s root. */
const PARTS = {
  common: '^engine/common/', // the shared vocabulary: API records, outcomes, stages, settings limits, loopback
  util: '^engine/util/',
  gen: '^engine/gen/', // generated from protos/
  proto: '^engine/proto\\.ts$',
  clock: '^engine/clock\\.ts$',
  digest: '^engine/digest\\.ts$',
  config: '^engine/(config|config-load|settings)\\.ts$',
  grpc: '^engine/grpc/',
  events: '^engine/events/',
  auth: '^engine/auth/',
  tls: '^engine/tls/',
  store: '^engine/store/',
  logs: '^engine/logs/',
  metrics: '^engine/metrics/',
  history: '^engine/history/',
  invocations: '^engine/invocations/', // Bazel invocations from RequestMetadata, and the history journal on disk
  bes: '^engine/bes/', // the Build Event Service (bazel --bes_backend): decodes Bazel's events for the invocations
  execution: '^engine/execution/', // Executor and Runner contracts and the executor decorators
  worker: '^engine/worker/',
  wasi: '^engine/wasi/', // the WASI runner: WebAssembly actions in node:wasi worker threads
  sandbox: '^engine/sandbox/', // the bubblewrap runner decorator, cgroup limits, the sandbox decision
  scheduler: '^engine/scheduler/',
  reapi: '^engine/reapi/',
  upstream: '^engine/upstream/', // an upstream REAPI server: its client, the remote executor, read/write-through
  lan: '^engine/lan/',
  peers: '^engine/peers/', // peer Kilns as execution targets: their status, the remote executor to each, mDNS
  http: '^engine/http/',
  compression: '^engine/compression/', // zstd streams for compressed-blobs transfers
  asset: '^engine/asset/', // Remote Asset API: URL downloads, checksum qualifiers, the URL → digest index
  governor: '^engine/governor/', // the polite farm: slot governor, desk signals, pause
  health: '^engine/health/', // named health problems
  // Composition roots: they build the engine out of everything else.
  root: '^engine/(engine|cli|cli-commands|cli-lan|executor-factory)\\.ts$',
};

const BASE = ['common', 'util', 'clock', 'digest', 'proto'];

/** The "may import" table: each part and the other parts it may import (its own files always). */
const MAY_IMPORT = {
  common: [],
  util: ['common'],
  gen: [],
  proto: ['gen'],
  clock: [],
  digest: ['proto'],
  config: ['common', 'util'],
  grpc: ['common', 'proto', 'digest'],
  events: ['common', 'digest'],
  auth: ['common', 'util'],
  tls: ['common', 'util'],
  store: [...BASE, 'grpc', 'events'],
  logs: [...BASE, 'grpc', 'events', 'store'],
  metrics: [...BASE, 'events', 'store'],
  history: [...BASE, 'events', 'store'],
  invocations: [...BASE, 'grpc', 'events', 'history'],
  // Hands plain facts to a sink interface in engine/common; knows nothing of how invocations are kept.
  bes: [...BASE, 'grpc'],
  // Runs actions through contracts; knows nothing of the worker pool or the queue.
  execution: [...BASE, 'grpc', 'events', 'store'],
  worker: [...BASE, 'grpc', 'events', 'store', 'execution'],
  // A Runner like the worker's ProcessRunner; reads the size syntax from config, and modules named by digest from the store.
  wasi: [...BASE, 'grpc', 'config', 'store', 'execution'],
  // Wraps any Runner; reads platform-property sizes with config's parser; a slot's
  // sandbox runs the worker's launcher inside as its agent (slot-sandboxes.ts).
  sandbox: [...BASE, 'grpc', 'config', 'execution', 'worker'],
  // The scheduler reaches executors only through engine/execution's contracts.
  scheduler: [...BASE, 'grpc', 'events', 'store', 'execution'],
  reapi: [...BASE, 'grpc', 'events', 'store', 'logs', 'execution', 'scheduler', 'compression', 'asset'],
  // Speaks REAPI to another server; reuses the worker's input-tree walk and reapi's resource names.
  upstream: [...BASE, 'grpc', 'events', 'store', 'execution', 'worker', 'reapi'],
  lan: ['common', 'util', 'config', 'events', 'auth', 'tls'],
  // Each peer is an upstream-style remote executor; mDNS finds them in LAN mode.
  peers: [...BASE, 'grpc', 'config', 'store', 'execution', 'upstream', 'lan'],
  http: [...BASE, 'grpc', 'config', 'events', 'auth', 'tls', 'store', 'logs', 'metrics', 'history', 'invocations', 'reapi', 'lan'],
  compression: [],
  asset: [...BASE, 'grpc', 'events', 'store'],
  // Knows the scheduler only through the small interface farm.ts declares.
  governor: [...BASE, 'events'],
  health: [...BASE, 'events'],
  root: Object.keys(PARTS),
};

/** Single files a part may import beyond its table, each with the reason (none today). */
const TRANSITIONAL = {};

/** A part's location as a person reads it: "engine/store/", "engine/(config|config-load|settings).ts". */
const shown = (part) => PARTS[part].replace(/^\^/, '').replace(/\$$/, '').replace(/\\\./g, '.');

const layerRules = Object.entries(MAY_IMPORT).map(([part, allowed]) => ({
  name: `${part}-may-import`,
  severity: 'error',
  comment: `${shown(part)} may import only ${allowed.length ? allowed.join(', ') : 'nothing else in engine/'} (the table in .dependency-cruiser.cjs)`,
  from: { path: PARTS[part] },
  to: { path: '^engine/', pathNot: [PARTS[part], ...allowed.map((p) => PARTS[p]), ...(TRANSITIONAL[part] ?? [])] },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'engine-part-not-in-table',
      severity: 'error',
      comment: 'every file under engine/ that imports the engine belongs to a part of the table in .dependency-cruiser.cjs; add a row for it',
      from: { path: '^engine/', pathNot: Object.values(PARTS) },
      to: { path: '^engine/' },
    },
    {
      name: 'engine-not-to-electron-or-renderer',
      severity: 'error',
      comment: 'the engine runs headless (kiln serve): it never imports the desktop shell or the dashboard',
      from: { path: '^engine/' },
      to: { path: '^(electron|renderer)/' },
    },
    {
      name: 'renderer-only-engine-common',
      severity: 'error',
      comment: 'the dashboard shares only engine/common with the engine (types and limits); anything else would pull the engine into the browser bundle',
      from: { path: '^renderer/' },
      to: { path: '^engine/', pathNot: PARTS.common },
    },
  ],
  options: {
    // Type-only imports are layering too.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: ['node_modules', '^engine/gen/'] },
    exclude: { path: ['^renderer/dist/', 'node_modules'] },
  },
};
