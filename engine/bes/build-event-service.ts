// The Build Event Service Bazel publishes to with --bes_backend=grpc://…
// (google.devtools.build.v1.PublishBuildEvent). Lifecycle events are unary;
// the tool's events come as one bidirectional stream per invocation attempt,
// and each is acknowledged with its sequence number, in order, once folded
// into the invocation index. Bazel's own events travel as an Any of
// build_event_stream.BuildEvent; anything else is acknowledged and left alone.
import type * as grpc from '@grpc/grpc-js';
import type { Clock } from '../clock';
import type { BuildEventSink, BuildFact } from '../common/build-event-facts';
import { malformedReason } from '../grpc/malformed-requests';
import { invalidArgument, toServiceError, unary } from '../grpc/status';
import { bep, bes, msFromTimestamp, protobuf } from '../proto';
import { factsOf } from './bep-decoder';

const BAZEL_EVENT_TYPE_URL = 'type.googleapis.com/build_event_stream.BuildEvent';
/** Same bound as RequestMetadata's tool_invocation_id, so both name the invocation alike. */
const MAX_INVOCATION_ID = 256;
/** Invocations whose highest folded sequence number is remembered (for retried streams). */
const REMEMBERED_STREAMS = 256;

export interface BuildEventServiceOptions {
  sink: BuildEventSink;
  clock: Clock;
  log?: (line: string) => void;
}

type StreamCall = grpc.ServerDuplexStream<bes.PublishBuildToolEventStreamRequest, bes.PublishBuildToolEventStreamResponse>;

export function createBuildEventService(opts: BuildEventServiceOptions): grpc.UntypedServiceImplementation {
  // A retried stream resends events not yet acknowledged; ones already folded are acknowledged again, not folded twice.
  const folded = new Map<string, number>();
  const remember = (id: string, seq: number) => {
    folded.delete(id);
    folded.set(id, seq);
    if (folded.size > REMEMBERED_STREAMS) folded.delete(folded.keys().next().value!);
  };

  const apply = (invocationId: string, facts: BuildFact[], at: number) => {
    try {
      opts.sink.applyBuildEvent(invocationId, facts, at);
    } catch (err) {
      // Bookkeeping must never fail the build that reports to it.
      opts.log?.(`kiln: build event of invocation ${invocationId} not recorded: ${(err as Error).message}`);
    }
  };

  return {
    publishLifecycleEvent: unary((req: bes.PublishLifecycleEventRequest) => {
      const ordered = req.buildEvent;
      if (!ordered) throw invalidArgument('build_event is missing: a lifecycle event needs its OrderedBuildEvent', 'build_event');
      const event = ordered.event;
      if (!event) throw invalidArgument('build_event.event is missing', 'build_event.event');
      const id = ordered.streamId?.invocationId ?? '';
      // Build-level events (enqueued, build finished) name no invocation: nothing to fold.
      if (id) {
        checkInvocationId(id, 'build_event.stream_id.invocation_id');
        const at = msFromTimestamp(event.eventTime);
        if (event.invocationAttemptStarted) apply(id, [{ kind: 'started', at }], opts.clock.now());
        else if (event.invocationAttemptFinished) apply(id, [{ kind: 'finished', at }], opts.clock.now());
      }
      return protobuf.Empty.create();
    }),

    publishBuildToolEventStream: (call: StreamCall) =>
      new Promise<void>((settle) => {
        let invocationId: string | undefined;
        let last: number | undefined;
        let over = false;
        const finish = (err?: unknown) => {
          if (over) return;
          over = true;
          if (err !== undefined && !call.cancelled) call.emit('error', toServiceError(err));
          else if (!call.cancelled) call.end();
          settle();
        };
        // Each event is folded and acknowledged as it arrives, so acks keep the stream's order.
        const receive = (req: bes.PublishBuildToolEventStreamRequest) => {
          const bad = malformedReason(req);
          if (bad !== undefined) throw invalidArgument(`a PublishBuildToolEventStreamRequest is not a valid message: ${bad}`);
          const ordered = req.orderedBuildEvent;
          if (!ordered) throw invalidArgument('ordered_build_event is missing', 'ordered_build_event');
          const id = ordered.streamId?.invocationId ?? '';
          checkInvocationId(id, 'ordered_build_event.stream_id.invocation_id');
          if (invocationId !== undefined && id !== invocationId) {
            throw invalidArgument(`one stream carries one invocation: "${id}" after "${invocationId}"`, 'ordered_build_event.stream_id.invocation_id');
          }
          invocationId = id;
          const seq = Number(ordered.sequenceNumber ?? 0);
          if (!Number.isSafeInteger(seq) || seq < 1) {
            throw invalidArgument(`sequence_number ${seq} is not valid: events are numbered from 1`, 'ordered_build_event.sequence_number');
          }
          if (last !== undefined && seq !== last + 1) {
            throw invalidArgument(`sequence_number ${seq} follows ${last}: a stream's events are numbered one after another`, 'ordered_build_event.sequence_number');
          }
          last = seq;
          const event = ordered.event;
          if (!event) throw invalidArgument(`event ${seq} is missing its BuildEvent`, 'ordered_build_event.event');
          if (seq > (folded.get(id) ?? 0)) {
            // Liveness goes by Kiln's clock: Bazel's may be another machine's.
            apply(id, bazelFacts(event, seq), opts.clock.now());
            remember(id, seq);
          }
          if (!call.write(bes.PublishBuildToolEventStreamResponse.create({ streamId: ordered.streamId, sequenceNumber: seq }))) {
            // The client reads acks slower than it sends: stop reading until they drain.
            call.pause();
            call.once('drain', () => call.resume());
          }
        };
        call.on('data', (req: bes.PublishBuildToolEventStreamRequest) => {
          if (over) return;
          try {
            receive(req);
          } catch (err) {
            finish(err);
          }
        });
        call.on('end', () => finish());
        call.on('cancelled', () => finish());
        call.on('error', () => finish());
      }),
  };
}

function checkInvocationId(id: string, field: string): void {
  if (!id) throw invalidArgument(`${field} is empty: Kiln files build events under the invocation id (bazel --invocation_id)`, field);
  if (id.length > MAX_INVOCATION_ID) throw invalidArgument(`${field} is ${id.length} characters; at most ${MAX_INVOCATION_ID}`, field);
}

/** The facts of a tool event: Bazel's own event decoded; other kinds give none. */
function bazelFacts(event: bes.IBuildEvent, seq: number): BuildFact[] {
  const any = event.bazelEvent;
  if (!any || any.type_url !== BAZEL_EVENT_TYPE_URL) return [];
  let decoded: bep.BuildEvent;
  try {
    decoded = bep.BuildEvent.decode(any.value ?? new Uint8Array(0));
  } catch (err) {
    throw invalidArgument(`event ${seq}: bazel_event is not a valid build_event_stream.BuildEvent: ${(err as Error).message}`, 'ordered_build_event.event.bazel_event');
  }
  return factsOf(decoded);
}
