// A small Build Event Service client for tests: builds Bazel's events the way
// Bazel 4.2.3 wraps them, sends a stream, and collects the acknowledgements.
import { bep, bes, protobuf } from '../../engine/proto';
import { grpc, type KilnClients } from '../helpers';

export function bazelEvent(event: bep.IBuildEvent): bes.IBuildEvent {
  return {
    eventTime: protobuf.Timestamp.create({ seconds: 1_700_000_000 }),
    bazelEvent: { type_url: 'type.googleapis.com/build_event_stream.BuildEvent', value: bep.BuildEvent.encode(bep.BuildEvent.create(event)).finish() },
  };
}

export function ordered(invocationId: string, seq: number, event: bes.IBuildEvent): bes.IPublishBuildToolEventStreamRequest {
  return {
    orderedBuildEvent: { streamId: { buildId: 'build-1', invocationId, component: bes.StreamId.BuildComponent.TOOL }, sequenceNumber: seq, event },
    projectId: 'kiln-test',
  };
}

type Duplex = grpc.ClientDuplexStream<bes.IPublishBuildToolEventStreamRequest, bes.PublishBuildToolEventStreamResponse>;

/** Sends `requests` on one stream and half-closes; resolves with the acked sequence numbers, or rejects with the stream's error (acks so far on it). */
export function publishStream(clients: KilnClients, requests: bes.IPublishBuildToolEventStreamRequest[], metadata = new grpc.Metadata()): Promise<number[]> {
  const call = (clients.raw.PublishBuildEvent as unknown as { publishBuildToolEventStream(m: grpc.Metadata): Duplex }).publishBuildToolEventStream(metadata);
  const acks: number[] = [];
  return new Promise((resolve, reject) => {
    call.on('data', (res: bes.PublishBuildToolEventStreamResponse) => acks.push(Number(res.sequenceNumber)));
    call.on('error', (err) => reject(Object.assign(err, { acks })));
    call.on('end', () => resolve(acks));
    for (const r of requests) call.write(r);
    call.end();
  });
}

export function publishLifecycle(clients: KilnClients, req: bes.IPublishLifecycleEventRequest): Promise<unknown> {
  const client = clients.raw.PublishBuildEvent as unknown as {
    publishLifecycleEvent(req: bes.IPublishLifecycleEventRequest, cb: (err: grpc.ServiceError | null, res?: unknown) => void): void;
  };
  return new Promise((resolve, reject) => client.publishLifecycleEvent(req, (err, res) => (err ? reject(err) : resolve(res))));
}

/** The events of a `bazel test //pkg:all` with one sh_test, one genrule and one skipped target; test.log at `logUri`. */
export function testBuildEvents(logUri: string): bes.IBuildEvent[] {
  return [
    bazelEvent({ id: { started: {} }, started: { uuid: 'x', startTimeMillis: 1_700_000_000_000, buildToolVersion: '4.2.3', command: 'test', workspaceDirectory: '/home/u/ws' } }),
    bazelEvent({ id: { unstructuredCommandLine: {} }, unstructuredCommandLine: { args: ['bazel', 'test', '--remote_executor=grpc://127.0.0.1:8980', '//pkg:all'] } }),
    bazelEvent({ id: { progress: { opaqueCount: 0 } }, progress: { stderr: 'Loading: 0 packages loaded' } }),
    bazelEvent({ id: { pattern: { pattern: ['//pkg:all'] } }, expanded: {} }),
    bazelEvent({ id: { targetConfigured: { label: '//pkg:gen' } }, configured: { targetKind: 'genrule rule' } }),
    bazelEvent({ id: { targetConfigured: { label: '//pkg:check' } }, configured: { targetKind: 'sh_test rule', testSize: bep.TestSize.SMALL } }),
    bazelEvent({ id: { targetConfigured: { label: '//pkg:windows_only' } }, configured: { targetKind: 'sh_binary rule' } }),
    bazelEvent({ id: { targetCompleted: { label: '//pkg:windows_only' } }, aborted: { reason: bep.Aborted.AbortReason.SKIPPED, description: 'incompatible with the platform' } }),
    bazelEvent({ id: { targetCompleted: { label: '//pkg:gen', configuration: { id: 'k8' } } }, completed: { success: true } }),
    bazelEvent({ id: { targetCompleted: { label: '//pkg:check', configuration: { id: 'k8' } } }, completed: { success: true } }),
    bazelEvent({
      id: { testResult: { label: '//pkg:check', run: 1, shard: 1, attempt: 1, configuration: { id: 'k8' } } },
      testResult: {
        status: bep.TestStatus.PASSED,
        testAttemptStartMillisEpoch: 1_700_000_001_000,
        testAttemptDurationMillis: 1234,
        executionInfo: { strategy: 'remote', cachedRemotely: false, exitCode: 0 },
        testActionOutput: [
          { name: 'test.log', uri: logUri },
          { name: 'test.xml', uri: 'file:///tmp/test.xml' },
        ],
      },
    }),
    bazelEvent({ id: { testSummary: { label: '//pkg:check', configuration: { id: 'k8' } } }, testSummary: { overallStatus: bep.TestStatus.PASSED, totalRunCount: 1, runCount: 1, shardCount: 1, totalRunDurationMillis: 1234 } }),
    bazelEvent({ id: { buildFinished: {} }, finished: { overallSuccess: true, finishTimeMillis: 1_700_000_005_000, exitCode: { name: 'SUCCESS', code: 0 } } }),
  ];
}
