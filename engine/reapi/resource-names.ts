// ByteStream resource names and instance names (REAPI v2.3):
//   read:  {instance}/blobs/[{fn}/]{hash}/{size}
//          {instance}/compressed-blobs/{compressor}/[{fn}/]{hash}/{size}
//   write: {instance}/uploads/{uuid}/blobs/[{fn}/]{hash}/{size}[/{metadata...}]
//          {instance}/uploads/{uuid}/compressed-blobs/{compressor}/[{fn}/]{hash}/{size}[/{metadata...}]
// An empty instance has no leading slash. The digest function segment is only
// present for functions whose hash length does not identify them (blake3).
import {
  DIGEST_FUNCTIONS,
  DigestError,
  digestFunctionByName,
  digestFunctionFromEnum,
  toBlobDigest,
  validateHashAndSize,
  type BlobDigest,
  type DigestFunctionInfo,
} from '../digest';
import { GrpcError, invalidArgument } from '../grpc/status';

/** Segments an instance name may not contain: the spec reserves them for resource names. */
const RESERVED_SEGMENTS = new Set([
  'blobs',
  'uploads',
  'actions',
  'actionResults',
  'operations',
  'capabilities',
  'compressed-blobs',
]);

/** Lower-case digest function names the spec defines; only some are supported here. */
const KNOWN_FUNCTION_NAMES = new Set(['sha256', 'sha1', 'md5', 'vso', 'sha384', 'sha512', 'murmur3', 'sha256tree', 'blake3']);

/** Compressors Kiln reads and writes (names as in compressed-blobs resource names). */
export type CompressorName = 'zstd';

/** Compressor names the spec defines, so an unsupported one is named as such. */
const KNOWN_COMPRESSOR_NAMES = new Set(['identity', 'zstd', 'deflate', 'brotli']);

export interface BlobResource {
  instance: string;
  /** The uncompressed blob's digest, also for compressed-blobs names. */
  digest: BlobDigest;
  /** Set for compressed-blobs names: the bytes on the wire are this compressor's stream. */
  compressor?: CompressorName;
}

export interface UploadResource extends BlobResource {
  uploadId: string;
}

/** Throws INVALID_ARGUMENT unless `instance` is a usable instance name ("" is the default instance). */
export function validateInstanceName(instance: string, field = 'instance_name'): void {
  if (instance === '') return;
  const segments = instance.split('/');
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..') {
      throw invalidArgument(
        `${field} "${instance}" has an empty, "." or ".." segment; use slash-separated names like "main" or "team/linux"`,
        field,
      );
    }
    if (RESERVED_SEGMENTS.has(s)) {
      throw invalidArgument(
        `${field} "${instance}" uses the reserved word "${s}"; instance names may not contain ${[...RESERVED_SEGMENTS].join(', ')}`,
        field,
      );
    }
  }
}

/** Parses a read resource name. Throws INVALID_ARGUMENT with the reason. */
export function parseReadResourceName(name: string): BlobResource {
  const segs = name.split('/');
  rejectLeadingSlash(name);
  const n = segs.length;
  // From the end: size, hash, then either "blobs" or a function name followed by "blobs";
  // compressed-blobs has the compressor's name between it and the digest.
  for (const digestParts of [2, 3]) {
    const at = n - digestParts - 1;
    if (at >= 0 && segs[at] === 'blobs') return readResource(name, segs.slice(0, at), undefined, segs.slice(at + 1));
    if (at >= 1 && segs[at - 1] === 'compressed-blobs') {
      return readResource(name, segs.slice(0, at - 1), parseCompressor(name, segs[at]!), segs.slice(at + 1));
    }
  }
  throw badName(name, 'expected "{instance}/blobs/[{digest_function}/]{hash}/{size}" or "{instance}/compressed-blobs/zstd/[{digest_function}/]{hash}/{size}"');
}

function readResource(name: string, instanceSegs: string[], compressor: CompressorName | undefined, digestSegs: string[]): BlobResource {
  const instance = instanceSegs.join('/');
  validateInstanceName(instance, 'resource_name');
  const digest = parseDigestSegments(name, digestSegs);
  return compressor ? { instance, digest, compressor } : { instance, digest };
}

function parseCompressor(name: string, segment: string): CompressorName {
  if (segment === 'zstd') return 'zstd';
  const why = KNOWN_COMPRESSOR_NAMES.has(segment) ? 'is not supported' : 'is not a compressor';
  throw badName(name, `compressor "${segment}" ${why}; Kiln accepts zstd (or the uncompressed "blobs/..." form)`);
}

/** Parses a write resource name. Throws INVALID_ARGUMENT with the reason. */
export function parseWriteResourceName(name: string): UploadResource {
  const segs = name.split('/');
  rejectLeadingSlash(name);
  // The instance cannot contain "uploads", so its first occurrence ends the instance;
  // trailing metadata after the size is free-form and ignored.
  const at = segs.indexOf('uploads');
  const kind = segs[at + 2];
  if (at < 0 || (kind !== 'blobs' && kind !== 'compressed-blobs')) {
    throw badName(name, 'expected "{instance}/uploads/{uuid}/blobs/[{digest_function}/]{hash}/{size}[/{metadata}]"');
  }
  const instance = segs.slice(0, at).join('/');
  validateInstanceName(instance, 'resource_name');
  const uploadId = segs[at + 1];
  if (!uploadId) throw badName(name, 'the upload id after "uploads/" is empty');
  const compressor = kind === 'compressed-blobs' ? parseCompressor(name, segs[at + 3] ?? '') : undefined;
  const rest = segs.slice(at + (compressor ? 4 : 3));
  const withFn = rest.length >= 3 && isFunctionSegment(rest[0]);
  const digest = parseDigestSegments(name, rest.slice(0, withFn ? 3 : 2));
  return compressor ? { instance, uploadId, digest, compressor } : { instance, uploadId, digest };
}

/** The read resource name of a blob (what clients send to ByteStream.Read). */
export function blobResourceName(instance: string, digest: BlobDigest, compressor?: CompressorName): string {
  const prefix = instance ? `${instance}/` : '';
  return `${prefix}${blobsSegment(compressor)}${functionSegment(digest)}${digest.hash}/${digest.size}`;
}

/** The write resource name of an upload (what clients send to ByteStream.Write). */
export function uploadResourceName(instance: string, uploadId: string, digest: BlobDigest, compressor?: CompressorName): string {
  const prefix = instance ? `${instance}/` : '';
  return `${prefix}uploads/${uploadId}/${blobsSegment(compressor)}${functionSegment(digest)}${digest.hash}/${digest.size}`;
}

function blobsSegment(compressor: CompressorName | undefined): string {
  return compressor ? `compressed-blobs/${compressor}/` : 'blobs/';
}

/** sha256 is implied by a 64-character hash; every other function is named. */
function functionSegment(d: BlobDigest): string {
  return d.fn === 'sha256' ? '' : `${d.fn}/`;
}

function isFunctionSegment(s: string): boolean {
  return KNOWN_FUNCTION_NAMES.has(s);
}

/** [fn?, hash, size] → a validated digest. */
function parseDigestSegments(name: string, parts: string[]): BlobDigest {
  let fn: DigestFunctionInfo = DIGEST_FUNCTIONS.sha256;
  if (parts.length === 3) {
    const named = digestFunctionByName(parts[0]);
    if (!named) {
      const why = KNOWN_FUNCTION_NAMES.has(parts[0]) ? 'is not supported' : 'is not a digest function';
      throw badName(name, `"${parts[0]}" ${why}; Kiln supports sha256 (implied) and blake3`);
    }
    fn = named;
    parts = parts.slice(1);
  }
  const [hash, sizeText] = parts;
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText ?? '')) throw badName(name, `size "${sizeText}" is not a non-negative decimal integer`);
  const size = Number(sizeText);
  try {
    validateHashAndSize(hash, size, fn, 'resource_name');
  } catch (err) {
    if (err instanceof DigestError) throw invalidArgument(`${err.message} (in "${name}")`, 'resource_name');
    throw err;
  }
  return { fn: fn.name, hash, size };
}

function rejectLeadingSlash(name: string): void {
  if (name.startsWith('/')) throw badName(name, 'it starts with "/" (the default instance has no leading slash)');
}

function badName(name: string, why: string): GrpcError {
  return invalidArgument(`resource name "${name}" is malformed: ${why}`, 'resource_name');
}

/**
 * The digest function a request names, as INVALID_ARGUMENT when unsupported.
 * Unset means SHA-256 (the only 64-hex function that may go unnamed); a digest of
 * another length then fails its own validation, naming its field.
 */
export function requestDigestFunction(
  value: number | null | undefined,
  _firstHash?: string | null, // Accepted for callers; unset always means SHA-256.
): DigestFunctionInfo {
  try {
    return digestFunctionFromEnum(value, undefined);
  } catch (err) {
    if (err instanceof DigestError) throw invalidArgument(err.message, 'digest_function');
    throw err;
  }
}

/** A wire digest validated against `fn`, as INVALID_ARGUMENT naming `field` on failure. */
export function requestDigest(
  d: { hash?: string | null; sizeBytes?: number | null } | null | undefined,
  fn: DigestFunctionInfo,
  field: string,
  /** The digest's index in a repeated field: named as `field[index]`, built only for an error. */
  index?: number,
): BlobDigest {
  try {
    return toBlobDigest(d, fn, field);
  } catch (err) {
    if (!(err instanceof DigestError)) throw err;
    if (index === undefined) throw invalidArgument(err.message, field);
    return requestDigest(d, fn, `${field}[${index}]`); // fails again, naming the entry
  }
}
