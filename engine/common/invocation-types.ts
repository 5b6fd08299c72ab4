// Bazel invocations as the HTTP API shows them: the builds whose calls carried
// RequestMetadata (tool_invocation_id), with the actions they ran or found in
// the action cache. Pure types, no imports beyond engine/common; re-exported by
// api-types.ts. Stable contract: add optional fields, never rename or remove.

/** What Bazel says about itself in RequestMetadata on every call (empty fields left out). */
export interface RequestOrigin {
  toolInvocationId?: string;
  correlatedInvocationsId?: string;
  actionMnemonic?: string;
  targetId?: string;
  configurationId?: string;
  toolName?: string;
  toolVersion?: string;
}

/**
 * `running`: an action of it is queued or running, or it made a call in the last
 * INVOCATION_IDLE_MS; `finished` otherwise (Bazel does not say when a build ends).
 */
export type InvocationState = 'running' | 'finished';

/** Quiet this long (and nothing queued or running) and an invocation counts as finished. */
export const INVOCATION_IDLE_MS = 30_000;

export interface InvocationCounts {
  /** Actions that ran on Kiln (any outcome but cached). */
  executed: number;
  /** Answered from the action cache (GetActionResult or Execute) without running. */
  cached: number;
  /** Ran and did not succeed: non-zero exit, timeout, error. */
  failed: number;
  queued: number;
  running: number;
}

/** One row of GET /api/invocations, and the head of GET /api/invocations/{id}. */
export interface InvocationSummary {
  /** tool_invocation_id: one `bazel build`/`bazel test` command. */
  id: string;
  /** correlated_invocations_id: ties several invocations of one run together (e.g. a CI job). */
  correlatedId?: string;
  /** e.g. "bazel" and "4.2.3". */
  toolName?: string;
  toolVersion?: string;
  /** First and latest gRPC call carrying this invocation id (epoch ms). */
  startedAt: number;
  lastSeenAt: number;
  /** lastSeenAt - startedAt, or up to now while running. */
  durationMs: number;
  state: InvocationState;
  actions: InvocationCounts;
  /** gRPC calls seen with this invocation id (uploads, lookups, executions). */
  calls: number;
  /** Labels of the targets its actions belonged to, first seen first (at most 200). */
  targets: string[];
  /** How many distinct targets, also beyond the 200 listed. */
  targetCount: number;
  /** Mnemonics and how many actions had each. */
  mnemonics: Record<string, number>;
  /** What the build's Build Event Service stream said (command line, targets, tests, status); absent without BES. */
  build?: BuildEventSummary;
}

/** GET /api/invocations?cursor=&limit= — newest first. */
export interface InvocationPage {
  items: InvocationSummary[];
  /** Pass as ?cursor= for the next (older) page; absent at the end. */
  nextCursor?: string;
  /** Every invocation the history holds. */
  total: number;
}

// --- What Bazel's Build Event Service stream says (bazel --bes_backend) -------

/** A target's outcome: analysed and waiting (`configured`), `built`, `failed`, or `skipped` (not built at all). */
export type TargetOutcome = 'configured' | 'built' | 'failed' | 'skipped';

export interface InvocationTarget {
  label: string;
  /** e.g. "sh_test rule". */
  kind?: string;
  /** For tests: SMALL, MEDIUM, LARGE, ENORMOUS. */
  testSize?: string;
  outcome: TargetOutcome;
  /** Why it failed or was skipped, when Bazel says. */
  reason?: string;
}

/** Bazel's test status names: PASSED, FLAKY, TIMEOUT, FAILED, INCOMPLETE, REMOTE_FAILURE, FAILED_TO_BUILD, … */
export type TestStatusName = string;

/** A file Bazel names in an event. */
export interface BuildFile {
  name: string;
  /** As Bazel sent it: file://… (on Bazel's machine) or bytestream://host/[instance/]blobs/HASH/SIZE. */
  uri?: string;
  /** When the uri names a CAS blob: readable at GET /api/blobs/{hash}/{size} if this Kiln holds it. */
  blob?: { hash: string; size: number };
}

/** One attempt of one run of one shard of a test target. */
export interface TestRun {
  run: number;
  shard: number;
  attempt: number;
  status: TestStatusName;
  statusDetails?: string;
  startedAt?: number;
  durationMs?: number;
  cachedLocally?: boolean;
  cachedRemotely?: boolean;
  /** e.g. "remote", "linux-sandbox". */
  strategy?: string;
  testLog?: BuildFile;
}

export interface TestTargetResult {
  label: string;
  /** The summary's overall status once it came, else the latest run's. */
  status: TestStatusName;
  shardCount?: number;
  runCount?: number;
  totalRunCount?: number;
  cachedCount?: number;
  durationMs?: number;
  /** Runs in arrival order (at most MAX_TEST_RUNS per target, MAX_TEST_RUNS_TOTAL per invocation); empty in the list. */
  runs: TestRun[];
}

/** The build as Bazel's own events describe it; present when the build sent BES. */
export interface BuildEventSummary {
  /** "build", "test", … */
  command?: string;
  /** Bazel's command line as it ran it (the unstructured one: options expanded). */
  commandLine?: string[];
  /** The target patterns asked for. */
  patterns?: string[];
  toolVersion?: string;
  workspace?: string;
  startedAt?: number;
  finishedAt?: number;
  /** Bazel's exit code and its name (SUCCESS, BUILD_FAILURE, TESTS_FAILED, INTERRUPTED, …). */
  exitCode?: { name: string; code: number };
  /** Events received (including ones Kiln does not read). */
  events: number;
  /** Configured targets (at most MAX_BUILD_TARGETS; targetsTotal counts all). */
  targets: InvocationTarget[];
  targetsTotal: number;
  /**
   * Test targets (at most MAX_TEST_TARGETS; testsTotal counts all). In GET /api/invocations
   * each test's `runs` is left empty; GET /api/invocations/{id} has them.
   */
  tests: TestTargetResult[];
  testsTotal: number;
}

/** Bounds of what one invocation keeps of its BES stream. */
export const MAX_BUILD_TARGETS = 1_000;
export const MAX_TEST_TARGETS = 500;
export const MAX_TEST_RUNS = 50;
/** Runs kept over all the tests of one invocation. */
export const MAX_TEST_RUNS_TOTAL = 2_000;
export const MAX_COMMAND_LINE_ARGS = 500;
