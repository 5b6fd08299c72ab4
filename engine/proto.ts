// One import point for the generated protobuf types, plus the small helpers
// every service needs (Any packing, Timestamp/Duration conversion).
import * as $protobuf from 'protobufjs/minimal';
import { build, build_event_stream, google } from './gen/protos';

// int64 fields (sizes, offsets) decode as plain numbers, as the generated
// types declare: protobufjs would otherwise hand out Long objects whenever the
// `long` package is installed. Sizes stay far below 2^53.
$protobuf.util.Long = undefined as never;
$protobuf.configure();

export import reapi = build.bazel.remote.execution.v2;
export import semver = build.bazel.semver;
export import logstream = build.bazel.remote.logstream.v1;
export import asset = build.bazel.remote.asset.v1;
export import bytestream = google.bytestream;
export import longrunning = google.longrunning;
export import rpc = google.rpc;
export import protobuf = google.protobuf;
/** The Build Event Service (google.devtools.build.v1) and the Bazel events it carries. */
export import bes = google.devtools.build.v1;
export import bep = build_event_stream;

const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** A generated message class: enough of it to encode, decode and name it. */
export interface MessageType<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
  getTypeUrl(prefix?: string): string;
}

export function encode<T>(type: MessageType<T>, message: T): Buffer {
  const bytes = type.encode(message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function packAny<T>(type: MessageType<T>, message: T): protobuf.Any {
  return protobuf.Any.create({ type_url: type.getTypeUrl('type.googleapis.com'), value: type.encode(message).finish() });
}

/** Decodes `any` as `type`, or returns undefined when it holds another type. */
export function unpackAny<T>(type: MessageType<T>, any: protobuf.Any | null | undefined): T | undefined {
  if (!any || any.type_url !== type.getTypeUrl('type.googleapis.com')) return undefined;
  return type.decode(any.value);
}

export function typeUrlOf<T>(type: MessageType<T>): string {
  return type.getTypeUrl(TYPE_URL_PREFIX.slice(0, -1));
}

export function timestampFromMs(ms: number): protobuf.Timestamp {
  const seconds = Math.floor(ms / 1000);
  return protobuf.Timestamp.create({ seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) });
}

export function msFromTimestamp(ts: protobuf.Timestamp.$Properties | null | undefined): number | undefined {
  if (!ts) return undefined;
  return Number(ts.seconds ?? 0) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
}

export function durationFromMs(ms: number): protobuf.Duration {
  const seconds = Math.floor(ms / 1000);
  return protobuf.Duration.create({ seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) });
}

export function msFromDuration(d: protobuf.Duration.$Properties | null | undefined): number | undefined {
  if (!d) return undefined;
  return Number(d.seconds ?? 0) * 1000 + (d.nanos ?? 0) / 1e6;
}
