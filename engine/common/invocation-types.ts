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
}

/** GET /api/invocations?cursor=&limit= — newest first. */
export interface InvocationPage {
  items: InvocationSummary[];
  /** Pass as ?cursor= for the next (older) page; absent at the end. */
  nextCursor?: string;
  /** Every invocation the history holds. */
  total: number;
}
