// Remote Asset API v1 (Fetch and Push): what Bazel's --experimental_remote_downloader
// talks to. Thin, like the other services: validate, hand over to the AssetFetcher,
// translate. Bad requests are gRPC errors; an origin that fails (404, timeout, wrong
// checksum) is an OK call with a non-OK `status` in the response, as the spec says.
import type * as grpc from '@grpc/grpc-js';
import { toWireDigest, type DigestFunctionInfo } from '../digest';
import { asset, msFromDuration, msFromTimestamp, reapi, rpc } from '../proto';
import type { AssetFetcher, FetchOutcome } from '../asset/asset-fetcher';
import { isHttpUrl } from '../asset/http-download';
import { parseQualifiers, QualifierError, sha256ToSri, type AssetQualifiers } from '../asset/qualifiers';
import type { BlobStore } from '../store/blob-store';
import { requestMetadataOf } from '../grpc/services';
import { Status, invalidArgument, missingBlobs, unary } from '../grpc/status';
import { callAbortSignal } from './bytestream';
import { requestDigest, requestDigestFunction, validateInstanceName } from './resource-names';

export interface RemoteAssetOptions {
  fetcher: AssetFetcher;
  store: BlobStore;
}

/** The fetch failure → the status code the spec lists for it. */
const FAILURE_CODES: Record<Exclude<FetchOutcome, { ok: true }>['failure'], Status> = {
  'not-found': Status.NOT_FOUND,
  timeout: Status.DEADLINE_EXCEEDED,
  'too-large': Status.RESOURCE_EXHAUSTED,
  refused: Status.PERMISSION_DENIED,
  unreachable: Status.UNAVAILABLE,
  'checksum-mismatch': Status.ABORTED,
  'bad-archive': Status.INVALID_ARGUMENT,
  'archive-too-large': Status.RESOURCE_EXHAUSTED,
};

interface CommonRequest {
  instanceName: string;
  uris: string[];
  qualifiers: asset.Qualifier.$Properties[];
  digestFunction: number;
}

export function createFetchService(opts: RemoteAssetOptions): grpc.UntypedServiceImplementation {
  const { fetcher } = opts;

  const fetch = async (
    kind: 'blob' | 'directory',
    req: CommonRequest & Pick<asset.FetchBlobRequest, 'timeout' | 'oldestContentAccepted'>,
    call: grpc.ServerUnaryCall<unknown, unknown>,
  ) => {
    const { fn, qualifiers } = checkCommon(req, true);
    const request = {
      uris: req.uris,
      qualifiers,
      fn,
      timeoutMs: msFromDuration(req.timeout),
      oldestAcceptedMs: msFromTimestamp(req.oldestContentAccepted),
      toolInvocationId: requestMetadataOf(call.metadata)?.toolInvocationId || undefined,
      signal: callAbortSignal(call),
    };
    const outcome = kind === 'blob' ? await fetcher.fetchBlob(request) : await fetcher.fetchDirectory(request);
    if (!outcome.ok) {
      return { status: rpc.Status.create({ code: FAILURE_CODES[outcome.failure], message: outcome.message }), uri: outcome.uri };
    }
    const known = kind === 'blob' && fn.name === 'sha256' ? [{ name: 'checksum.sri', value: sha256ToSri(outcome.digest.hash) }] : [];
    return { status: rpc.Status.create({ code: Status.OK }), uri: outcome.uri, qualifiers: known, digest: toWireDigest(outcome.digest), fn };
  };

  return {
    fetchBlob: unary<asset.FetchBlobRequest, asset.FetchBlobResponse>(async (req, call) => {
      const r = await fetch('blob', req, call);
      return asset.FetchBlobResponse.create({
        status: r.status,
        uri: r.uri,
        qualifiers: r.qualifiers ?? [],
        blobDigest: r.digest,
        digestFunction: r.fn?.value,
      });
    }),
    fetchDirectory: unary<asset.FetchDirectoryRequest, asset.FetchDirectoryResponse>(async (req, call) => {
      const r = await fetch('directory', req, call);
      return asset.FetchDirectoryResponse.create({
        status: r.status,
        uri: r.uri,
        rootDirectoryDigest: r.digest,
        digestFunction: r.fn?.value,
      });
    }),
  };
}

export function createPushService(opts: RemoteAssetOptions): grpc.UntypedServiceImplementation {
  const { fetcher, store } = opts;

  const push = async (kind: 'blob' | 'directory', req: CommonRequest & Pick<asset.PushBlobRequest, 'expireAt'>, wire: reapi.Digest.$Properties | null | undefined, field: string) => {
    const { fn, qualifiers } = checkCommon(req, false);
    const digest = requestDigest(wire, fn, field);
    // Clients must upload first; say which blob is missing, as Execute does.
    if (!(await store.has(digest))) throw missingBlobs([digest], kind === 'blob' ? 'pushed' : 'pushed root directory');
    await fetcher.push(kind, req.uris, qualifiers, digest, msFromTimestamp(req.expireAt));
  };

  return {
    pushBlob: unary<asset.PushBlobRequest, asset.PushBlobResponse>(async (req) => {
      await push('blob', req, req.blobDigest, 'blob_digest');
      return asset.PushBlobResponse.create();
    }),
    pushDirectory: unary<asset.PushDirectoryRequest, asset.PushDirectoryResponse>(async (req) => {
      await push('directory', req, req.rootDirectoryDigest, 'root_directory_digest');
      return asset.PushDirectoryResponse.create();
    }),
  };
}

/**
 * Checks what Fetch and Push share: instance, at least one URI (http(s) only when
 * Kiln may download it), the digest function and the qualifiers.
 */
function checkCommon(req: CommonRequest, downloadable: boolean): { fn: DigestFunctionInfo; qualifiers: AssetQualifiers } {
  validateInstanceName(req.instanceName);
  if (req.uris.length === 0) throw invalidArgument('uris is empty; give at least one URI', 'uris');
  if (downloadable) {
    req.uris.forEach((uri, i) => {
      if (!isHttpUrl(uri)) throw invalidArgument(`uris[${i}] "${uri}" is not an http(s) URL; Kiln downloads only http and https`, `uris[${i}]`);
    });
  }
  const fn = requestDigestFunction(req.digestFunction);
  try {
    return { fn, qualifiers: parseQualifiers(req.qualifiers, fn) };
  } catch (err) {
    if (err instanceof QualifierError) throw invalidArgument(err.message, err.field);
    throw err;
  }
}
