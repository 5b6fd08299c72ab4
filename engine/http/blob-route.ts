// GET /api/blobs/{hash}/{size}[?limit=BYTES]: one SHA-256 CAS blob, streamed as
// text, e.g. a test.log that Bazel's build events name by a bytestream:// uri.
// Behind the same token as the rest of the API; a digest is all it takes, as on gRPC.
import type { ServerResponse } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import { HttpError } from './request';
import { securityHeaders } from './static-files';

/** The blob's first `limit` bytes (0: all of it), or undefined when the CAS does not hold it. */
export type BlobReader = (hash: string, size: number, limit: number) => Promise<Readable | undefined>;

export async function serveBlob(res: ServerResponse, read: BlobReader, hash: string, sizeText: string, url: URL): Promise<void> {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new HttpError(400, `"${hash.slice(0, 80)}" is not a SHA-256 hash (64 lower-case hex digits)`);
  const size = Number(sizeText);
  if (!/^\d{1,15}$/.test(sizeText) || !Number.isSafeInteger(size)) throw new HttpError(400, `size "${sizeText.slice(0, 40)}" is not a number of bytes`);
  const limitText = url.searchParams.get('limit');
  const limit = limitText === null ? 0 : Number(limitText);
  if (limitText !== null && (!/^\d{1,15}$/.test(limitText) || limit < 1)) throw new HttpError(400, `limit must be a positive number of bytes, not "${limitText.slice(0, 40)}"`);
  const body = await read(hash, size, limit);
  if (!body) throw new HttpError(404, `blob ${hash}/${size} is not in this Kiln's CAS (evicted, or stored elsewhere)`);
  const length = limit ? Math.min(limit, size) : size;
  securityHeaders(res);
  res.writeHead(200, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': length,
    'Cache-Control': 'private, max-age=3600',
    'X-Blob-Size': String(size),
  });
  if (res.req.method === 'HEAD') {
    body.destroy();
    res.end();
    return;
  }
  pipeline(body, res, () => undefined);
}
