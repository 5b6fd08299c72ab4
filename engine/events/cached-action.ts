// An action answered from the action cache is an action too: it gets the same
// queued → finished pair of events as one that ran, with outcome `cached`, so
// history, invocations and metrics count it. Used by the Execution service's
// cache hits (through the scheduler) and by GetActionResult hits.
import type { RequestOrigin } from '../common/invocation-types';
import type { KilnEvent } from './event-bus';

export interface CachedAction {
  id: string;
  at: number;
  /** "hash/size". */
  actionDigest: string;
  instance: string;
  origin?: RequestOrigin;
  exitCode?: number;
  stdoutDigest?: string;
  stderrDigest?: string;
}

export function cachedActionEvents(a: CachedAction): KilnEvent[] {
  return [
    {
      type: 'action.queued',
      id: a.id,
      at: a.at,
      actionDigest: a.actionDigest,
      instance: a.instance,
      mnemonic: a.origin?.actionMnemonic,
      target: a.origin?.targetId,
      toolInvocationId: a.origin?.toolInvocationId,
      origin: a.origin,
    },
    {
      type: 'action.finished',
      id: a.id,
      at: a.at,
      outcome: 'cached',
      exitCode: a.exitCode ?? 0,
      timing: { queuedMs: 0, inputFetchMs: 0, executionMs: 0, outputUploadMs: 0, totalMs: 0 },
      stdoutDigest: a.stdoutDigest,
      stderrDigest: a.stderrDigest,
    },
  ];
}

/** "hash/size" of a Digest message, or undefined. */
export function digestText(d: { hash?: string | null; sizeBytes?: number | Long | string | null } | null | undefined): string | undefined {
  return d?.hash ? `${d.hash}/${d.sizeBytes ?? 0}` : undefined;
}

interface Long {
  toString(): string;
}
