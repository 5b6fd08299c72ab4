// LogStream v1 over the LogHub. An action's stdout/stderr are named
// `{instance}/logstreams/{opId}-stdout|-stderr` (put into ExecuteOperationMetadata
// by the scheduler); CreateLogStream names `{parent}/logstreams/{id}` with a
// write resource `{name}/{secret}`. ByteStream Read of a log stream name stays
// open and delivers bytes as they are written, ending when the stream finishes.
import type * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { uuidIds, type IdSource } from '../clock';
import { GrpcError, Status, invalidArgument, notFound, toServiceError } from '../grpc/status';
import { logstream } from '../proto';
import { LogNotFoundError, type LogHub, type LogStreamKind } from '../logs/log-hub';

/** Same shape as the one engine/reapi/bytestream.ts accepts (structural, so no import cycle). */
export interface LiveResourceReader {
  owns(resourceName: string): boolean;
  read(
    resourceName: string,
    offset: number,
    limit: number,
    sink: (chunk: Buffer) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void>;
}

const SEGMENT = 'logstreams';
/** Streams created through CreateLogStream that are remembered at once. */
const MAX_CREATED = 1_000;

type ParsedName =
  | { kind: 'read'; id: string }
  | { kind: 'write'; id: string; secret: string };

interface Target {
  logId: string;
  stream: LogStreamKind;
}

export class LogStreams implements LiveResourceReader {
  /** CreateLogStream id → where its bytes live and its write secret. */
  private readonly created = new Map<string, Target & { secret: string }>();

  constructor(
    private readonly hub: LogHub,
    private readonly ids: IdSource = uuidIds,
  ) {}

  /** Resource names of a (queued or running) action's output streams. */
  streamNamesFor(opId: string, instance: string): { stdout: string; stderr: string } {
    this.hub.expect(opId);
    const base = `${instance ? `${instance}/` : ''}${SEGMENT}/${encodeURIComponent(opId)}`;
    return { stdout: `${base}-stdout`, stderr: `${base}-stderr` };
  }

  /** CreateLogStream: a new stream under `parent`, tailable like an action's output. */
  createLogStream(parent: string): { name: string; writeResourceName: string } {
    if (parent.startsWith('/') || parent.endsWith('/') || parent.split('/').includes(SEGMENT)) {
      throw invalidArgument(`parent "${parent}" is not a valid resource name (no leading/trailing "/", no "${SEGMENT}" segment)`, 'parent');
    }
    const id = this.ids.next();
    const logId = `logstream:${id}`;
    const secret = randomBytes(16).toString('hex');
    this.hub.start(logId, this.hub.pathsFor(logId));
    this.created.set(id, { logId, stream: 'stdout', secret });
    if (this.created.size > MAX_CREATED) {
      const [oldest, target] = this.created.entries().next().value!;
      this.created.delete(oldest);
      void this.hub.finish(target.logId);
    }
    const name = `${parent ? `${parent}/` : ''}${SEGMENT}/${id}`;
    return { name, writeResourceName: `${name}/${secret}` };
  }

  owns(resourceName: string): boolean {
    return parseName(resourceName) !== undefined;
  }

  async read(
    resourceName: string,
    offset: number,
    limit: number,
    sink: (chunk: Buffer) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const parsed = parseName(resourceName);
    if (!parsed) throw invalidArgument(`"${resourceName}" is not a log stream name`, 'resource_name');
    if (parsed.kind === 'write') {
      throw invalidArgument(
        `"${resourceName}" is a log stream's write resource name; read the stream by its name (without the final secret segment)`,
        'resource_name',
      );
    }
    if (offset < 0 || limit < 0) throw invalidArgument('read_offset and read_limit must not be negative', 'read_offset');
    const target = this.resolve(parsed.id);
    const info = target && (await this.hub.info(target.logId, target.stream));
    if (!target || !info) throw notFound(`log stream "${resourceName}" does not exist or has been deleted by log retention`);
    if (info.finished && offset > info.size) {
      throw new GrpcError(Status.OUT_OF_RANGE, `read_offset ${offset} is past the end of the log (${info.size} bytes)`);
    }
    try {
      for await (const chunk of this.hub.read(target.logId, target.stream, { offset, limit, signal })) {
        await sink(chunk.data);
      }
    } catch (err) {
      if (err instanceof LogNotFoundError) throw notFound(err.message);
      throw err;
    }
  }

  /** Handlers for engine/grpc/services LogStreamService. */
  service(): grpc.UntypedServiceImplementation {
    return {
      createLogStream: (
        call: grpc.ServerUnaryCall<logstream.CreateLogStreamRequest, logstream.LogStream>,
        callback: grpc.sendUnaryData<logstream.LogStream>,
      ) => {
        try {
          const { name, writeResourceName } = this.createLogStream(call.request.parent ?? '');
          callback(null, logstream.LogStream.create({ name, writeResourceName }));
        } catch (err) {
          callback(toServiceError(err));
        }
      },
    };
  }

  private resolve(id: string): Target | undefined {
    const created = this.created.get(id);
    if (created) return created;
    for (const stream of ['stdout', 'stderr'] as const) {
      if (id.endsWith(`-${stream}`)) {
        let opId: string;
        try {
          opId = decodeURIComponent(id.slice(0, -stream.length - 1));
        } catch {
          return undefined;
        }
        return { logId: opId, stream };
      }
    }
    return undefined;
  }
}

/** Parses from the end, so instance names may contain slashes. */
function parseName(name: string): ParsedName | undefined {
  const parts = name.split('/');
  const n = parts.length;
  if (n >= 2 && parts[n - 2] === SEGMENT && parts[n - 1]) return { kind: 'read', id: parts[n - 1] };
  if (n >= 3 && parts[n - 3] === SEGMENT && parts[n - 2] && parts[n - 1]) {
    return { kind: 'write', id: parts[n - 2], secret: parts[n - 1] };
  }
  return undefined;
}
