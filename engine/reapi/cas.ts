// ContentAddressableStorage service: presence checks, small-blob batches and
// directory tree walks. Large blobs go through ByteStream instead.
import type * as grpc from '@grpc/grpc-js';
import { digestKey, toWireDigest, type BlobDigest, type DigestFunctionInfo } from '../digest';
import { reapi } from '../proto';
import { BlobNotFoundError, DigestMismatchError, type BlobStore } from '../store/blob-store';
import { GrpcError, Status, invalidArgument, notFound, statusOk, toGrpcError, toServiceError, unary } from '../grpc/status';
import { requestDigest, requestDigestFunction, validateInstanceName } from './resource-names';
import { callAbortSignal, writeWithBackpressure } from './bytestream';
import { compressBuffer, decompressExact, ZstdFormatError } from '../compression/zstd';

const ZSTD = reapi.Compressor.Value.ZSTD;
const IDENTITY = reapi.Compressor.Value.IDENTITY;

export interface CasOptions {
  store: BlobStore;
  maxBatchTotalSizeBytes: number;
}

/** Directories per GetTree page when the client asks for none (or more). */
const MAX_TREE_PAGE_ITEMS = 10_000;
/** Encoded bytes per GetTree page, well under a client's default 4 MiB receive limit. */
const MAX_TREE_PAGE_BYTES = 2 * 1024 * 1024;

export function createCasService(opts: CasOptions): grpc.UntypedServiceImplementation {
  const { store, maxBatchTotalSizeBytes: limit } = opts;

  return {
    findMissingBlobs: unary<reapi.FindMissingBlobsRequest, reapi.FindMissingBlobsResponse>(async (req) => {
      validateInstanceName(req.instanceName);
      const fn = requestDigestFunction(req.digestFunction);
      // 10,000 digests a call is common: no per-digest field name unless one is wrong.
      const wire = req.blobDigests;
      const digests = new Array<BlobDigest>(wire.length);
      for (let i = 0; i < wire.length; i++) digests[i] = requestDigest(wire[i], fn, 'blob_digests', i);
      const missing = await store.findMissing(digests);
      return reapi.FindMissingBlobsResponse.create({ missingBlobDigests: wireDigestsOf(missing, digests, wire) });
    }),

    batchUpdateBlobs: unary<reapi.BatchUpdateBlobsRequest, reapi.BatchUpdateBlobsResponse>(async (req) => {
      validateInstanceName(req.instanceName);
      const total = req.requests.reduce((n, r) => n + (r.data?.byteLength ?? 0), 0);
      if (total > limit) throw overLimit('upload', total, limit);
      const fn = requestDigestFunction(req.digestFunction);
      const responses = await Promise.all(
        req.requests.map(async (r, i) => {
          const status = await perBlob(async () => {
            const compressor = r.compressor ?? IDENTITY;
            if (compressor !== IDENTITY && compressor !== ZSTD) {
              throw invalidArgument(`requests[${i}]: compressor ${compressor} is not supported; send the blob uncompressed or zstd-compressed`);
            }
            const digest = requestDigest(r.digest, fn, `requests[${i}].digest`);
            const data = r.data ?? new Uint8Array();
            if (compressor === IDENTITY) return store.writeAll(digest, data);
            // Streamed through the decoder: a small message cannot make us hold a huge blob.
            try {
              await store.write(digest, decompressExact(once(data), digest.size));
            } catch (err) {
              if (err instanceof ZstdFormatError) throw invalidArgument(`requests[${i}]: compressed blob ${digest.hash}: ${err.message}; nothing was stored`);
              throw err;
            }
          });
          return { digest: r.digest, status };
        }),
      );
      return reapi.BatchUpdateBlobsResponse.create({ responses });
    }),

    batchReadBlobs: unary<reapi.BatchReadBlobsRequest, reapi.BatchReadBlobsResponse>(async (req) => {
      validateInstanceName(req.instanceName);
      const total = req.digests.reduce((n, d) => n + Math.max(0, Number(d.sizeBytes ?? 0)), 0);
      if (total > limit) throw overLimit('read', total, limit);
      const fn = requestDigestFunction(req.digestFunction);
      // Compressed only when the client accepts zstd; each blob is answered in the smaller form.
      const zstdAccepted = (req.acceptableCompressors ?? []).includes(ZSTD);
      const responses = await Promise.all(
        req.digests.map(async (d, i) => {
          let data: Uint8Array = new Uint8Array();
          let compressor = IDENTITY;
          const status = await perBlob(async () => {
            data = await store.readAll(requestDigest(d, fn, `digests[${i}]`));
            if (zstdAccepted && data.byteLength > 0) {
              const packed = compressBuffer(data);
              if (packed.byteLength < data.byteLength) [data, compressor] = [packed, ZSTD];
            }
          });
          return { digest: d, data, status, compressor };
        }),
      );
      return reapi.BatchReadBlobsResponse.create({ responses });
    }),

    async getTree(call: grpc.ServerWritableStream<reapi.GetTreeRequest, reapi.GetTreeResponse>) {
      try {
        await streamTree(store, call);
        call.end();
      } catch (err) {
        call.emit('error', toServiceError(err));
      }
    },
  };
}

async function* once(data: Uint8Array): AsyncGenerator<Uint8Array> {
  yield data;
}

/** Runs one blob's part of a batch; its failure becomes that blob's status, not the call's. */
async function perBlob(work: () => Promise<void>) {
  try {
    await work();
    return statusOk();
  } catch (err) {
    if (err instanceof GrpcError) return err.toStatus();
    if (err instanceof DigestMismatchError) return invalidArgument(err.message).toStatus();
    if (err instanceof BlobNotFoundError) return notFound(err.message).toStatus();
    return toGrpcError(err).toStatus();
  }
}

function overLimit(what: 'upload' | 'read', total: number, limit: number): GrpcError {
  return invalidArgument(
    `batch ${what} of ${total} bytes exceeds max_batch_total_size_bytes (${limit}); split the batch or use ByteStream for large blobs`,
  );
}

/**
 * Walks the tree breadth-first and streams it in pages. The page token is the
 * walk's frontier (directories not yet sent), so resuming needs no server state.
 */
async function streamTree(
  store: BlobStore,
  call: grpc.ServerWritableStream<reapi.GetTreeRequest, reapi.GetTreeResponse>,
): Promise<void> {
  const req = call.request;
  validateInstanceName(req.instanceName);
  const fn = requestDigestFunction(req.digestFunction);
  const root = requestDigest(req.rootDigest, fn, 'root_digest');
  if (req.pageSize < 0) throw invalidArgument(`page_size ${req.pageSize} is negative`, 'page_size');
  const pageSize = req.pageSize > 0 ? Math.min(req.pageSize, MAX_TREE_PAGE_ITEMS) : MAX_TREE_PAGE_ITEMS;

  let frontier: BlobDigest[];
  if (req.pageToken) {
    frontier = decodePageToken(req.pageToken, root, fn);
  } else {
    if (!(await store.has(root))) throw notFound(`root directory ${root.hash}/${root.size} is not in the CAS`);
    frontier = [root];
  }
  const seen = new Set(frontier.map(digestKey));
  const signal = callAbortSignal(call);

  while (frontier.length > 0 && !signal.aborted) {
    const page: reapi.Directory[] = [];
    let bytes = 0;
    while (frontier.length > 0 && page.length < pageSize && bytes < MAX_TREE_PAGE_BYTES) {
      const digest = frontier.shift()!;
      const dir = await readDirectory(store, digest, digest === root && !req.pageToken);
      if (!dir) continue; // Missing subtrees are omitted, as the spec allows.
      page.push(dir);
      bytes += digest.size;
      for (const [i, child] of dir.directories.entries()) {
        const d = requestDigest(child.digest, fn, `directory ${digest.hash}: directories[${i}].digest`);
        if (!seen.has(digestKey(d))) {
          seen.add(digestKey(d));
          frontier.push(d);
        }
      }
    }
    // Drop missing directories at the head now, so no token leads to an empty page.
    while (frontier.length > 0 && !(await store.has(frontier[0]!))) frontier.shift();
    const nextPageToken = frontier.length > 0 ? encodePageToken(root, frontier) : '';
    await writeWithBackpressure(call, reapi.GetTreeResponse.create({ directories: page, nextPageToken }), signal);
  }
}

async function readDirectory(store: BlobStore, digest: BlobDigest, isRoot: boolean): Promise<reapi.Directory | undefined> {
  let data: Buffer;
  try {
    data = await store.readAll(digest);
  } catch (err) {
    if (!(err instanceof BlobNotFoundError)) throw err;
    if (isRoot) throw notFound(`root directory ${digest.hash}/${digest.size} is not in the CAS`);
    return undefined;
  }
  try {
    return reapi.Directory.decode(data);
  } catch (err) {
    throw invalidArgument(`blob ${digest.hash}/${digest.size} in the tree is not a Directory message: ${(err as Error).message}`);
  }
}

const TOKEN_VERSION = 'v1';

function encodePageToken(root: BlobDigest, frontier: BlobDigest[]): string {
  const body = [TOKEN_VERSION, root.fn, root.hash, ...frontier.map((d) => `${d.hash}/${d.size}`)].join(',');
  return Buffer.from(body).toString('base64url');
}

function decodePageToken(token: string, root: BlobDigest, fn: DigestFunctionInfo): BlobDigest[] {
  const bad = (why: string) =>
    invalidArgument(`page_token is not one this server issued for root ${root.hash}/${root.size} (${why}); start again without a token`, 'page_token');
  const [version, fnName, rootHash, ...rest] = Buffer.from(token, 'base64url').toString('utf8').split(',');
  if (version !== TOKEN_VERSION) throw bad('unknown format');
  if (fnName !== fn.name || rootHash !== root.hash) throw bad('it belongs to another tree');
  return rest.map((entry, i) => {
    const [hash, size] = entry.split('/');
    try {
      return requestDigest({ hash, sizeBytes: Number(size) }, fn, `page_token[${i}]`);
    } catch {
      throw bad('corrupt entry');
    }
  });
}

/**
 * The request's own wire digests for `missing` (stores answer with the very objects
 * they were asked about, in order), so the answer allocates nothing per digest;
 * any other answer is converted.
 */
function wireDigestsOf(missing: BlobDigest[], asked: BlobDigest[], wire: reapi.Digest.$Properties[]): reapi.Digest.$Properties[] {
  const out: reapi.Digest.$Properties[] = [];
  let j = 0;
  for (let i = 0; i < asked.length && j < missing.length; i++) {
    if (asked[i] === missing[j]) {
      out.push(wire[i]!);
      j++;
    }
  }
  return j === missing.length ? out : missing.map(toWireDigest);
}
