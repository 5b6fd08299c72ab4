// What the Build Event Service hands the invocation index: Bazel's events
// reduced to the plain facts Kiln keeps, so the index knows nothing of protobuf
// and the service nothing of how invocations are kept.
import type { BuildFile, TestRun } from './invocation-types';

export type BuildFact =
  | { kind: 'started'; at?: number; command?: string; toolVersion?: string; workspace?: string }
  | { kind: 'commandLine'; args: string[] }
  | { kind: 'patterns'; patterns: string[] }
  | { kind: 'configured'; label: string; targetKind?: string; testSize?: string }
  | { kind: 'completed'; label: string; success: boolean }
  /** A target that will not complete: skipped, or failed before it could (loading/analysis). */
  | { kind: 'aborted'; label: string; skipped: boolean; reason: string }
  | ({ kind: 'testResult'; label: string } & TestRun)
  | {
      kind: 'testSummary';
      label: string;
      status: string;
      shardCount?: number;
      runCount?: number;
      totalRunCount?: number;
      cachedCount?: number;
      durationMs?: number;
    }
  | { kind: 'finished'; at?: number; exitCode?: { name: string; code: number } };

export type { BuildFile };

/** Where facts go: the invocation index. One call per event, in stream order. */
export interface BuildEventSink {
  /** `facts` may be empty: the event still counts as received (and refreshes the invocation). */
  applyBuildEvent(invocationId: string, facts: BuildFact[], at: number): void;
}
