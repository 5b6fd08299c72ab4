// FindMissingBlobs asks about 10,000 digests a call, and protobufjs's decoding
// of such a request (a message object per Digest, each field through its
// generic reader) was the largest part of the call after the lookups. This
// reads the request's usual shape directly. A request in any other shape (a
// field this does not know, an unexpected wire type, a negative or huge
// varint) is handed to protobufjs, which decodes or refuses it exactly as
// before: the fast path never decides what is valid.
import { reapi } from '../proto';

/** What the FindMissingBlobs handler reads of a request. */
export interface FindMissingBlobsRequestFields {
  instanceName: string;
  digestFunction: number;
  blobDigests: reapi.Digest.$Properties[];
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
    const tag = readVarint(buf, r);
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (field === 1 && wireType === LENGTH_DELIMITED) {
      const end = lengthEnd(buf, r);
      out.instanceName = buf.toString('utf8', r.pos, end);
      r.pos = end;
    } else if (field === 2 && wireType === LENGTH_DELIMITED) {
      const end = lengthEnd(buf, r);
      out.blobDigests.push(readDigest(buf, r, end));
    } else if (field === 3 && wireType === VARINT) {
      out.digestFunction = readVarint(buf, r);
      if (out.digestFunction > 0x7fffffff) throw UNUSUAL; // an int32 on the wire: protobufjs's reading of it stands
    } else {
      throw UNUSUAL;
    }
  }
  return out;
}

function readDigest(buf: Buffer, r: { pos: number }, end: number): reapi.Digest.$Properties {
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
  return { hash, sizeBytes };
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
