// The trivial action the bench sends (/bin/true, empty input root), and the
// calls a REAPI client makes to run one uncached: FindMissingBlobs for the
// Action and Command, BatchUpdateBlobs for the missing ones, then Execute.
import { createHash, randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { MiB } from '../../engine/config';
import { encode, longrunning, protobuf, reapi, unpackAny } from '../../engine/proto';
import { nowMs, type ReapiClients, unary } from './lib';

export interface Digest {
  hash: string;
  sizeBytes: number;
}

export interface Blob {
  digest: Digest;
  data: Buffer;
}

export function digestOf(data: Uint8Array): Digest {
  return { hash: createHash('sha256').update(data).digest('hex'), sizeBytes: data.byteLength };
}

export const EMPTY_DIR: Digest = digestOf(Buffer.alloc(0));

const TRUE_COMMAND = encode(reapi.Command, reapi.Command.create({ arguments: ['/bin/true'] }));
const TRUE_COMMAND_DIGEST = digestOf(TRUE_COMMAND);

/** A /bin/true action made unique by its salt, so no server can answer it from a cache. */
export function trivialAction(salt = randomUUID(), inputRoot: Digest = EMPTY_DIR): { actionDigest: Digest; blobs: Blob[] } {
  const action = encode(
    reapi.Action,
    reapi.Action.create({ commandDigest: TRUE_COMMAND_DIGEST, inputRootDigest: inputRoot, salt: Buffer.from(salt) }),
  );
  const actionDigest = digestOf(action);
  return { actionDigest, blobs: [{ digest: TRUE_COMMAND_DIGEST, data: TRUE_COMMAND }, { digest: actionDigest, data: action }] };
}

/** Uploads blobs with BatchUpdateBlobs in batches of at most 2 MiB. */
export async function upload(c: ReapiClients, blobs: Blob[]): Promise<void> {
  let batch: Blob[] = [];
  let bytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const res = await unary<unknown, reapi.BatchUpdateBlobsResponse>(c.cas, 'batchUpdateBlobs', { requests: batch });
    const bad = res.responses.find((r) => (r.status?.code ?? 0) !== 0);
    if (bad) throw new Error(`BatchUpdateBlobs: ${bad.status?.message}`);
    batch = [];
    bytes = 0;
  };
  for (const b of blobs) {
    if (bytes + b.data.length > 2 * MiB) await flush();
    batch.push(b);
    bytes += b.data.length + 100;
  }
  await flush();
}

/** Execute, following the operation stream to its end; throws unless /bin/true ran and exited 0. */
export async function execute(c: ReapiClients, actionDigest: Digest, skipCacheLookup = true): Promise<reapi.ExecuteResponse> {
  const call = c.exec.execute(reapi.ExecuteRequest.create({ actionDigest, skipCacheLookup })) as grpc.ClientReadableStream<longrunning.Operation>;
  let last: longrunning.Operation | undefined;
  for await (const op of call as AsyncIterable<longrunning.Operation>) last = op;
  if (!last?.done) throw new Error('Execute stream ended before the operation was done');
  if (last.error) throw new Error(`Execute: operation error ${last.error.code} ${last.error.message}`);
  const res = unpackAny<reapi.ExecuteResponse>(reapi.ExecuteResponse, last.response as protobuf.Any | null | undefined);
  if (!res) throw new Error('Execute: the done operation carries no ExecuteResponse');
  if ((res.status?.code ?? 0) !== 0) throw new Error(`Execute: status ${res.status?.code} ${res.status?.message}`);
  if (res.result?.exitCode !== 0) throw new Error(`Execute: /bin/true exited ${res.result?.exitCode}`);
  return res;
}

export interface RoundTrip {
  findMissing: number;
  batchUpdate: number;
  execute: number;
  total: number;
}

/** One uncached action the way Bazel sends it; times each of the three calls (ms). */
export async function roundTrip(c: ReapiClients): Promise<RoundTrip> {
  const { actionDigest, blobs } = trivialAction();
  const t0 = nowMs();
  const found = await unary<unknown, reapi.FindMissingBlobsResponse>(c.cas, 'findMissingBlobs', {
    blobDigests: blobs.map((b) => b.digest),
  });
  const t1 = nowMs();
  const missing = new Set(found.missingBlobDigests.map((d) => d.hash));
  const toSend = blobs.filter((b) => missing.has(b.digest.hash));
  if (toSend.length > 0) await upload(c, toSend);
  const t2 = nowMs();
  await execute(c, actionDigest);
  const t3 = nowMs();
  return { findMissing: t1 - t0, batchUpdate: t2 - t1, execute: t3 - t2, total: t3 - t0 };
}
