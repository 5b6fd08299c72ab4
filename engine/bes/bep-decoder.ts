// Reduces one of Bazel's build events (build_event_stream.BuildEvent) to the
// facts the invocation index keeps. Events Kiln does not read give no facts.
// Strings from the client are cut to a length a page can show.
import { bep } from '../proto';
import type { BuildFact, BuildFile } from '../common/build-event-facts';
import { MAX_COMMAND_LINE_ARGS } from '../common/invocation-types';

const MAX_TEXT = 4_096;
const MAX_LABEL = 1_024;

const text = (s: string | null | undefined, max = MAX_TEXT) => (s ? s.slice(0, max) : undefined);
const label = (s: string | null | undefined) => text(s, MAX_LABEL);
/** int64 millis as a number, undefined when absent or zero (proto3 cannot tell them apart). */
const millis = (n: number | Long | null | undefined) => (n ? Number(n) : undefined);
type Long = { toNumber(): number };

export function factsOf(event: bep.IBuildEvent): BuildFact[] {
  const id = event.id ?? {};
  if (event.started) {
    const s = event.started;
    return [{ kind: 'started', at: millis(s.startTimeMillis), command: text(s.command, 64), toolVersion: text(s.buildToolVersion, 64), workspace: text(s.workspaceDirectory) }];
  }
  if (event.unstructuredCommandLine) {
    return [{ kind: 'commandLine', args: (event.unstructuredCommandLine.args ?? []).slice(0, MAX_COMMAND_LINE_ARGS).map((a) => a.slice(0, MAX_TEXT)) }];
  }
  if (event.expanded && id.pattern) {
    return [{ kind: 'patterns', patterns: (id.pattern.pattern ?? []).slice(0, 100).map((p) => p.slice(0, MAX_LABEL)) }];
  }
  if (event.configured && id.targetConfigured?.label && !id.targetConfigured.aspect) {
    const c = event.configured;
    return [{
      kind: 'configured',
      label: label(id.targetConfigured.label)!,
      targetKind: text(c.targetKind, 128),
      testSize: c.testSize ? bep.TestSize[c.testSize] : undefined,
    }];
  }
  if (event.completed && id.targetCompleted?.label && !id.targetCompleted.aspect) {
    return [{ kind: 'completed', label: label(id.targetCompleted.label)!, success: !!event.completed.success }];
  }
  if (event.aborted) {
    const target = id.targetCompleted?.label || id.targetConfigured?.label;
    if (!target) return [];
    const reason = event.aborted.reason ?? 0;
    const why = text(event.aborted.description) || bep.Aborted.AbortReason[reason] || 'aborted';
    return [{ kind: 'aborted', label: label(target)!, skipped: reason === bep.Aborted.AbortReason.SKIPPED, reason: why }];
  }
  if (event.testResult && id.testResult?.label) {
    const r = event.testResult;
    const log = (r.testActionOutput ?? []).find((f) => f.name === 'test.log');
    return [{
      kind: 'testResult',
      label: label(id.testResult.label)!,
      run: id.testResult.run ?? 0,
      shard: id.testResult.shard ?? 0,
      attempt: id.testResult.attempt ?? 0,
      status: bep.TestStatus[r.status ?? 0] ?? String(r.status),
      statusDetails: text(r.statusDetails),
      startedAt: millis(r.testAttemptStartMillisEpoch),
      durationMs: millis(r.testAttemptDurationMillis),
      cachedLocally: r.cachedLocally || undefined,
      cachedRemotely: r.executionInfo?.cachedRemotely || undefined,
      strategy: text(r.executionInfo?.strategy, 64),
      testLog: log ? buildFile(log) : undefined,
    }];
  }
  if (event.testSummary && id.testSummary?.label) {
    const s = event.testSummary;
    return [{
      kind: 'testSummary',
      label: label(id.testSummary.label)!,
      status: bep.TestStatus[s.overallStatus ?? 0] ?? String(s.overallStatus),
      shardCount: s.shardCount || undefined,
      runCount: s.runCount || undefined,
      totalRunCount: s.totalRunCount || undefined,
      cachedCount: s.totalNumCached || undefined,
      durationMs: millis(s.totalRunDurationMillis),
    }];
  }
  if (event.finished) {
    const f = event.finished;
    const exitCode = f.exitCode ? { name: text(f.exitCode.name, 64) ?? '', code: f.exitCode.code ?? 0 } : undefined;
    return [{ kind: 'finished', at: millis(f.finishTimeMillis), exitCode }];
  }
  return [];
}

/** A File with its CAS digest when its uri is bytestream://host[:port]/[instance/]blobs/HASH/SIZE. */
export function buildFile(f: bep.IFile): BuildFile {
  const file: BuildFile = { name: text(f.name, MAX_LABEL) ?? '' };
  if (f.uri) {
    file.uri = text(f.uri);
    const blob = blobOfUri(f.uri);
    if (blob) file.blob = blob;
  }
  return file;
}

/** The SHA-256 blob a bytestream:// uri names (parsed from the end: the instance name may hold slashes). */
export function blobOfUri(uri: string): { hash: string; size: number } | undefined {
  if (!uri.startsWith('bytestream://')) return undefined;
  const parts = uri.slice('bytestream://'.length).split('/');
  const [blobs, hash, sizeText] = parts.slice(-3);
  if (parts.length < 4 || blobs !== 'blobs' || !/^[0-9a-f]{64}$/.test(hash) || !/^\d{1,15}$/.test(sizeText)) return undefined;
  return { hash, size: Number(sizeText) };
}
