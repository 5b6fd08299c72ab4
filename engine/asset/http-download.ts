// Downloads one http(s) URL to a temp file while hashing it, within a timeout and a
// size limit. The digest is known only at the end (SRI gives no size), so the
// bytes land on disk first and go into the CAS from there, verified again.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { isLoopbackAddress } from '../common/loopback';
import { removeQuietly, uniqueTempPath, writeFully } from '../util/atomic-file';

/** Redirects followed before a download gives up. */
const MAX_REDIRECTS = 8;

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
  /**
   * Refuse URLs (and redirects) naming this machine by a loopback address or
   * "localhost": in LAN mode a caller on another machine must not reach services that
   * trust loopback. (A DNS name that resolves to loopback is not caught.)
   */
  refuseLoopback?: boolean;
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
    response = await fetchFollowing(url, signal, opts.refuseLoopback ?? false);
  } catch (err) {
    if (err instanceof DownloadError) throw err;
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

/** fetch, following redirects by hand so every hop is checked like the first URL. */
async function fetchFollowing(url: string, signal: AbortSignal, refuseLoopback: boolean): Promise<Response> {
  let current = url;
  for (let hop = 0; ; hop++) {
    if (!isHttpUrl(current)) throw new DownloadError('refused', `${url} redirects to "${current}", which is not an http(s) URL`);
    if (refuseLoopback && isLoopbackAddress(new URL(current).hostname.replace(/^\[|\]$/g, ''))) {
      throw new DownloadError('refused', `${current} names this machine; in LAN mode Kiln does not download from loopback addresses`);
    }
    const response = await fetch(current, { signal, redirect: 'manual' });
    const location = response.headers.get('location');
    if (response.status < 300 || response.status > 399 || !location) return response;
    await response.body?.cancel().catch(() => undefined);
    if (hop >= MAX_REDIRECTS) throw new DownloadError('unreachable', `${url} redirects more than ${MAX_REDIRECTS} times`);
    current = new URL(location, current).toString();
  }
}

function causeOf(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string; code?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}
