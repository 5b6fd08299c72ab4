// ByteStream ReadResponse (one field: `bytes data = 10`) encoded into a scratch buffer
// that is reused from message to message. grpc-js copies a serialized response into a
// frame of its own before its serializeMessage returns, so the scratch is free again at
// once. A download then allocates one buffer per message (grpc-js's frame) beside the
// bytes read, instead of one more for protobufjs's encoding: every MiB allocated outside
// the heap brings V8's next full garbage collection closer, and in a serve whose heap has
// grown (after hundreds of actions) those collections cost more than the copying.

/** Field 10, wire type 2 (length-delimited). */
const DATA_TAG = (10 << 3) | 2;
/** Largest scratch kept between messages; a larger message gets a buffer of its own. */
const MAX_SCRATCH_BYTES = 4 * 1024 * 1024 + 16;

let scratch = Buffer.allocUnsafe(0);

/**
 * The encoding of `{ data }`; the result is valid only until the next call, which is all
 * grpc-js's serializer needs (it copies it at once). Not for any other caller.
 */
export function encodeReadResponseTransient(m: { data?: Uint8Array | null }): Buffer {
  const data = m.data;
  if (!data || data.byteLength === 0) return Buffer.alloc(0); // proto3 leaves an empty field out
  const length = data.byteLength;
  const size = 1 + varintBytes(length) + length;
  let out: Buffer;
  if (size <= MAX_SCRATCH_BYTES) {
    if (scratch.byteLength < size) scratch = Buffer.allocUnsafe(Math.min(MAX_SCRATCH_BYTES, Math.max(size, 2 * scratch.byteLength)));
    out = scratch;
  } else out = Buffer.allocUnsafe(size);
  let at = 0;
  out[at++] = DATA_TAG;
  for (let v = length; ; ) {
    if (v < 0x80) {
      out[at++] = v;
      break;
    }
    out[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out.set(data, at);
  return out.subarray(0, size);
}

function varintBytes(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}
