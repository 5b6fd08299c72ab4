// FindMissingBlobs asks about 10,000 digests a call, and protobufjs's decoding
// of such a request (a message object per Digest, each field through its
// generic reader) was the largest part of the call after the lookups. This
// reads the request's usual shape directly. A request in any other shape (a
// field this does not know, an unexpected wire type, a negative or huge
// varint) is handed to protobufjs, which decodes or refuses it exactly as
// before: the fast path never decides what is valid.
//
// The answer's missing digests are copied from the request's own bytes: the
// response's field (missing_blob_digests = 2) has the number and type of the
// request's (blob_digests = 2), so each missing Digest's field, tag and all, is
// already its encoding. That saves protobufjs's encoding of each hash again and
// the garbage it makes.
import { encode, reapi } from '../proto';

/** What the FindMissingBlobs handler reads of a request. */
export interface FindMissingBlobsRequestFields {
  instanceName: string;
  digestFunction: number;
  blobDigests: reapi.Digest.$Properties[];
}

/** A Digest read by the fast path, with where its field lies in the request. */
class RequestDigest implements reapi.Digest.$Properties {
  constructor(
    readonly hash: string,
    readonly sizeBytes: number,
    /** The request's bytes and the span of this digest's field in them (tag, length, message). */
    readonly source: Buffer,
    readonly start: number,
    readonly end: number,
  ) {}
}

const VARINT = 0;
const LENGTH_DELIMITED = 2;

/** Thrown inside the fast reader at anything outside the usual shape; never escapes. */
class Unusual extends Error {}
const UNUSUAL = new Unusual();

/** Decodes a FindMissingBlobsRequest; bytes in an unusual shape go to protobufjs (which may throw). */
export function decodeFindMissingBlobsRequest(bytes: Buffer): FindMissingBlobsRequestFields {
  try {
    return readRequest(bytes);
  } catch (err) {
    if (err !== UNUSUAL) throw err;
    return reapi.FindMissingBlobsRequest.decode(bytes);
  }
}

function readRequest(buf: Buffer): FindMissingBlobsRequestFields {
  const out: FindMissingBlobsRequestFields = { instanceName: '', digestFunction: 0, blobDigests: [] };
  const r = { pos: 0 };
  while (r.pos < buf.length) {
    const fieldStart = r.pos;
    const tag = readVarint(buf, r);
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (field === 1 && wireType === LENGTH_DELIMITED) {
      const end = lengthEnd(buf, r);
      out.instanceName = buf.toString('utf8', r.pos, end);
      r.pos = end;
    } else if (field === 2 && wireType === LENGTH_DELIMITED) {
      const start = fieldStart;
      const end = lengthEnd(buf, r);
      out.blobDigests.push(readDigest(buf, r, start, end));
    } else if (field === 3 && wireType === VARINT) {
      out.digestFunction = readVarint(buf, r);
      if (out.digestFunction > 0x7fffffff) throw UNUSUAL; // an int32 on the wire: protobufjs's reading of it stands
    } else {
      throw UNUSUAL;
    }
  }
  return out;
}

function readDigest(buf: Buffer, r: { pos: number }, start: number, end: number): RequestDigest {
  let hash = '';
  let sizeBytes = 0;
  while (r.pos < end) {
    const tag = readVarint(buf, r);
    if (tag === ((1 << 3) | LENGTH_DELIMITED)) {
      const hashEnd = lengthEnd(buf, r);
      if (hashEnd > end) throw UNUSUAL;
      hash = buf.toString('utf8', r.pos, hashEnd);
      r.pos = hashEnd;
    } else if (tag === ((2 << 3) | VARINT)) {
      sizeBytes = readVarint(buf, r);
    } else {
      throw UNUSUAL;
    }
  }
  if (r.pos !== end) throw UNUSUAL;
  return new RequestDigest(hash, sizeBytes, buf, start, end);
}

/**
 * Encodes a FindMissingBlobsResponse. When every missing digest came from the fast
 * reader, the answer is their fields' bytes as the client sent them; otherwise
 * (a request protobufjs decoded, digests made elsewhere) protobufjs encodes it.
 */
export function encodeFindMissingBlobsResponse(m: reapi.FindMissingBlobsResponse | Uint8Array): Buffer {
  if (m instanceof Uint8Array) return Buffer.from(m.buffer, m.byteOffset, m.byteLength);
  const digests = m.missingBlobDigests;
  let total = 0;
  for (const d of digests) {
    if (!(d instanceof RequestDigest)) return encode(reapi.FindMissingBlobsResponse, m);
    total += d.end - d.start;
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const d of digests as unknown as RequestDigest[]) at += d.source.copy(out, at, d.start, d.end);
  return out;
}

/** Reads a length prefix and returns where the field ends. */
function lengthEnd(buf: Buffer, r: { pos: number }): number {
  const len = readVarint(buf, r);
  const end = r.pos + len;
  if (end > buf.length) throw UNUSUAL;
  return end;
}

/** A varint up to 2^53 − 1 as a number; longer ones (negative int64s among them) are unusual. */
function readVarint(buf: Buffer, r: { pos: number }): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    if (r.pos >= buf.length) throw UNUSUAL;
    const b = buf[r.pos++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      if (!Number.isSafeInteger(value)) throw UNUSUAL;
      return value;
    }
    scale *= 128;
  }
  throw UNUSUAL;
}
