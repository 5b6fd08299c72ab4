// Downloads one http(s) URL to a temp file while hashing it, within a timeout and a
// size limit. The digest is known only at the end (SRI gives no size), so the
// bytes land on disk first and go into the CAS from there, verified again.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { removeQuietly, uniqueTempPath, writeFully } from '../util/atomic-file';

export type DownloadFailure = 'not-found' | 'timeout' | 'too-large' | 'refused' | 'unreachable';

/** Why a download failed, in terms the Fetch service maps to a status. */
export class DownloadError extends Error {
  constructor(
    readonly kind: DownloadFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface Downloaded {
  /** A temp file holding the body; the caller removes it. */
  path: string;
  size: number;
  sha256: string;
}

export interface DownloadOptions {
  /** Folder for the temp file. */
  tmpDir: string;
  timeoutMs: number;
  maxBytes: number;
  /** The caller gave up (its call was cancelled). */
  signal?: AbortSignal;
}

/** Only these schemes are ever fetched: no file:, ftp:, data: or anything else. */
export function isHttpUrl(uri: string): boolean {
  try {
    const { protocol } = new URL(uri);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

export async function downloadToFile(url: string, opts: DownloadOptions): Promise<Downloaded> {
  if (!isHttpUrl(url)) throw new DownloadError('refused', `"${url}" is not an http(s) URL`);
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  const timedOut = () => new DownloadError('timeout', `downloading ${url} took longer than ${opts.timeoutMs} ms`);
  let response: Response;
  try {
    response = await fetch(url, { signal, redirect: 'follow' });
  } catch (err) {
    if (timeout.aborted) throw timedOut();
    throw new DownloadError('unreachable', `cannot download ${url}: ${causeOf(err)}`);
  }
  if (response.status === 404 || response.status === 410) {
    await response.body?.cancel().catch(() => undefined);
    throw new DownloadError('not-found', `${url} answered ${response.status} ${response.statusText}`);
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    throw new DownloadError(response.status === 401 || response.status === 403 ? 'refused' : 'unreachable', `${url} answered ${response.status} ${response.statusText}`);
  }
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > opts.maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new DownloadError('too-large', `${url} is ${declared} bytes, over the ${opts.maxBytes}-byte download limit`);
  }

  const path = uniqueTempPath(opts.tmpDir, 'download');
  const fh = await open(path, 'wx', 0o600);
  const hash = createHash('sha256');
  let size = 0;
  try {
    const body = response.body ? Readable.fromWeb(response.body as WebReadableStream<Uint8Array>) : Readable.from([]);
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.byteLength;
      if (size > opts.maxBytes) {
        body.destroy();
        throw new DownloadError('too-large', `${url} sent more than the ${opts.maxBytes}-byte download limit`);
      }
      hash.update(chunk);
      await writeFully(fh, chunk);
    }
    await fh.close();
    return { path, size, sha256: hash.digest('hex') };
  } catch (err) {
    await fh.close().catch(() => undefined);
    await removeQuietly(path);
    if (err instanceof DownloadError) throw err;
    if (timeout.aborted) throw timedOut();
    throw new DownloadError('unreachable', `download of ${url} broke off: ${causeOf(err)}`);
  }
}

function causeOf(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string; code?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}
