// Builds and uploads test content: blobs, protos, directory trees.
import { randomBytes, randomUUID } from 'node:crypto';
import { digestOf, toWireDigest, type BlobDigest, type DigestFunctionName } from '../../engine/digest';
import { encode, reapi, type MessageType } from '../../engine/proto';
import { uploadResourceName } from '../../engine/reapi/resource-names';
import type { KilnClients } from './clients';

export { digestOf, toWireDigest };

/** Deterministic-length random content. */
export function randomBlob(size: number): Buffer {
  return randomBytes(size);
}

export const fnEnum = (fn: DigestFunctionName) =>
  fn === 'sha256' ? reapi.DigestFunction.Value.SHA256 : reapi.DigestFunction.Value.BLAKE3;

/** Uploads `data` (BatchUpdate up to 1 MiB, ByteStream above) and returns its digest. */
export async function uploadBlob(
  clients: KilnClients,
  data: Buffer,
  opts: { instance?: string; fn?: DigestFunctionName } = {},
): Promise<BlobDigest> {
  const fn = opts.fn ?? 'sha256';
  const instance = opts.instance ?? '';
  const digest = await digestOf(data, fn);
  if (data.length <= 1024 * 1024) {
    const res = await clients.cas.batchUpdate({
      instanceName: instance,
      digestFunction: fnEnum(fn),
      requests: [{ digest: toWireDigest(digest), data }],
    });
    const st = res.responses[0]?.status;
    if (st?.code) throw new Error(`upload of ${digest.hash} failed: ${st.message}`);
    return digest;
  }
  const name = uploadResourceName(instance, randomUUID(), digest);
  const chunk = 256 * 1024;
  const requests = [];
  for (let at = 0; at < data.length; at += chunk) {
    const end = Math.min(data.length, at + chunk);
    requests.push({ resourceName: at === 0 ? name : '', writeOffset: at, data: data.subarray(at, end), finishWrite: end === data.length });
  }
  await clients.byteStream.write(requests);
  return digest;
}

/** Encodes and uploads a proto message; returns its digest and bytes. */
export async function uploadProto<T>(
  clients: KilnClients,
  type: MessageType<T>,
  message: T,
  opts: { instance?: string; fn?: DigestFunctionName } = {},
): Promise<{ digest: BlobDigest; bytes: Buffer }> {
  const bytes = encode(type, message);
  return { digest: await uploadBlob(clients, bytes, opts), bytes };
}

/** Digest of a proto message without uploading it. */
export async function protoDigest<T>(type: MessageType<T>, message: T, fn: DigestFunctionName = 'sha256'): Promise<BlobDigest> {
  return digestOf(encode(type, message), fn);
}
