// One typed event stream inside the engine. Producers (store, scheduler,
// workers, services) emit; metrics, the HTTP API and logs subscribe. Nothing polls.
import type { ActionOutcome, ActionOutputSummary, ActionTiming, ExecutionStage } from '../common/action-vocabulary';
import type { RequestOrigin } from '../common/invocation-types';
import type { BlobDigest } from '../digest';
import type { ActionSignal, FarmStatus } from '../common/farm-modes';

/** What the dashboard shows about an action once its Command is known. */
export interface ActionDetails {
  argv: string[];
  env: Record<string, string>;
  platform: Record<string, string>;
  /** Platform property names nothing in Kiln reads (ignored, listed so a typo shows). */
  ignoredPlatform?: string[];
  workingDirectory: string;
  outputPaths: string[];
  timeoutMs: number;
  doNotCache: boolean;
}

export type KilnEvent =
  | {
      type: 'action.queued';
      id: string;
      at: number;
      actionDigest: string;
      instance: string;
      mnemonic?: string;
      target?: string;
      toolInvocationId?: string;
      /** Everything the caller's RequestMetadata said. */
      origin?: RequestOrigin;
      details?: ActionDetails;
    }
  | { type: 'action.started'; id: string; at: number; slot: number; stdoutPath: string; stderrPath: string }
  /** A stage change; also sent within 'fetching-inputs' with the input counts once the input tree is read. */
  | { type: 'action.stage'; id: string; at: number; stage: ExecutionStage; inputFiles?: number; inputBytes?: number }
  | {
      type: 'action.finished';
      id: string;
      at: number;
      outcome: ActionOutcome;
      exitCode?: number;
      timing: ActionTiming;
      inputFiles?: number;
      inputBytes?: number;
      /** Where it ran ('local', 'upstream'), when an executor said so. */
      ranOn?: string;
      outputs?: ActionOutputSummary[];
      stdoutDigest?: string;
      stderrDigest?: string;
      message?: string;
    }
  /** `count`: how many lookups with this result the event stands for (1 when absent); FindMissingBlobs reports a call as one hit and one miss event. */
  | { type: 'cache.lookup'; at: number; store: 'ac' | 'cas'; hit: boolean; instance: string; count?: number }
  | { type: 'blob.written'; at: number; digest: BlobDigest }
  | { type: 'blob.read'; at: number; digest: BlobDigest; bytes: number }
  | { type: 'blob.evicted'; at: number; digest: BlobDigest }
  | { type: 'execution.toggled'; at: number; enabled: boolean }
  /** Worker slots or the cache budget changed at run time (Engine.updateSettings); both are the values now. */
  | { type: 'settings.changed'; at: number; concurrency: number; cacheSizeBytes: number }
  | { type: 'worker.slot'; at: number; slot: number; busy: boolean; actionId?: string }
  | { type: 'auth.rejected'; at: number; transport: 'grpc' | 'http'; reason: string }
  /** A Remote Asset fetch answered: from the CAS (hit), downloaded, or failed (message says why). */
  | {
      type: 'asset.fetched';
      at: number;
      uri: string;
      outcome: 'hit' | 'downloaded' | 'failed';
      bytes?: number;
      durationMs: number;
      toolInvocationId?: string;
      message?: string;
    }
  /** An accepted gRPC call carried RequestMetadata (engine/invocations/request-metadata.ts); `method` is its path. */
  | { type: 'request.metadata'; at: number; method: string; origin: RequestOrigin }
  /** Execute refused before queuing: execution off, the queue full, or Kiln stopping. */
  | { type: 'execution.refused'; at: number; reason: 'off' | 'queue-full' | 'stopping' }
  /** A person (or the farm's pause) signalled or cancelled a running or queued action; `result` says what came of it. */
  | { type: 'action.control'; id: string; at: number; control: 'signal' | 'cancel'; signal?: ActionSignal; by: string; result: string }
  /** The farm's mode, slots, reason or pause changed (engine/governor/farm.ts). */
  | { type: 'farm.changed'; at: number; status: FarmStatus };

export type KilnEventType = KilnEvent['type'];
export type EventOf<T extends KilnEventType> = Extract<KilnEvent, { type: T }>;

export interface EventSink {
  emit(event: KilnEvent): void;
}

type Listener = (event: KilnEvent) => void;

export class EventBus implements EventSink {
  private listeners = new Set<Listener>();
  private typed = new Map<KilnEventType, Set<Listener>>();

  emit(event: KilnEvent): void {
    for (const l of this.listeners) safeCall(l, event);
    const set = this.typed.get(event.type);
    if (set) for (const l of set) safeCall(l, event);
  }

  /** Every event. Returns an unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  on<T extends KilnEventType>(type: T, listener: (event: EventOf<T>) => void): () => void {
    let set = this.typed.get(type);
    if (!set) this.typed.set(type, (set = new Set()));
    set.add(listener as Listener);
    return () => set!.delete(listener as Listener);
  }
}

/** A sink that drops everything: for parts tested alone. */
export const nullSink: EventSink = { emit() {} };

function safeCall(l: Listener, e: KilnEvent): void {
  try {
    l(e);
  } catch (err) {
    // A broken subscriber must never break the producer (an upload, a running action).
    console.error(`kiln: event listener failed on ${e.type}:`, err);
  }
}
