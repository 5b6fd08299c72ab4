// The Remote Asset behaviour without the wire: answer a URI (+ checksum) from
// the CAS when Kiln has the content, otherwise download it, verify it, store it
// and remember where it came from. One download per content at a time, however
// many builds ask for it at once.
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { mkdir } from 'node:fs/promises';
import type { Clock } from '../clock';
import type { BlobDigest, DigestFunctionInfo } from '../digest';
import type { EventSink } from '../events/event-bus';
import { BlobNotFoundError, type BlobStore } from '../store/blob-store';
import { removeQuietly, removeTempFiles, uniqueTempPath } from '../util/atomic-file';
import type { AssetIndex, AssetKind } from './asset-index';
import { ArchiveError } from './archive-entry';
import { formatFromQualifier, sniffFormat, type ArchiveFormat } from './archive-format';
import { DownloadError, downloadToFile, type Downloaded, type DownloadFailure } from './http-download';
import type { AssetQualifiers } from './qualifiers';
import { unpackToCas, type UnpackLimits } from './unpack-archive';

/** Bounds on what one FetchDirectory unpacks, unless the options say otherwise. */
export const DEFAULT_UNPACK_LIMITS: UnpackLimits = { maxEntries: 100_000, maxBytes: 16 * 1024 ** 3, maxDepth: 64 };

/** MIME types in "resource_type" that name an archive; others leave the choice to the bytes. */
const ARCHIVE_MIME = /^application\/(x-tar|gzip|x-gzip|x-gtar|x-compressed-tar|zip|x-zip-compressed)$/i;

export interface AssetFetcherOptions {
  store: BlobStore;
  index: AssetIndex;
  /** Folder for downloads in progress (emptied at start). */
  tmpDir: string;
  /** Largest download accepted. */
  maxDownloadBytes: number;
  /** Timeout of a download when the request sets none. */
  defaultTimeoutMs: number;
  /** Longest timeout a request may ask for (longer ones are clamped). */
  maxTimeoutMs: number;
  /** LAN mode: never download from this machine's loopback addresses. */
  refuseLoopback?: boolean;
  /** Bounds on FetchDirectory's unpacking (DEFAULT_UNPACK_LIMITS). */
  unpackLimits?: Partial<UnpackLimits>;
  events: EventSink;
  clock: Clock;
}

export interface FetchRequest {
  uris: string[];
  qualifiers: AssetQualifiers;
  fn: DigestFunctionInfo;
  timeoutMs?: number;
  /** Content stored before this (ms since the epoch) must not be returned. */
  oldestAcceptedMs?: number;
  /** Bazel's invocation id, for the dashboard's per-build log. */
  toolInvocationId?: string;
  signal?: AbortSignal;
}

export type FetchOutcome =
  | { ok: true; uri: string; digest: BlobDigest; source: 'cache' | 'download'; /** Bytes fetched, when not the digest's size (an archive unpacked to a directory). */ bytes?: number }
  | { ok: false; uri: string; failure: FetchFailure; message: string };

/** Why a fetch failed: the download's reasons, a wrong checksum, or an archive Kiln will not unpack. */
export type FetchFailure = DownloadFailure | 'checksum-mismatch' | 'bad-archive' | 'archive-too-large';

export class AssetFetcher {
  private readonly inFlight = new Map<string, Promise<FetchOutcome>>();
  private ready: Promise<void>;

  constructor(private readonly opts: AssetFetcherOptions) {
    this.ready = mkdir(opts.tmpDir, { recursive: true }).then(() => removeTempFiles(opts.tmpDir).then(() => undefined));
  }

  /** FetchBlob: from the CAS when known, else downloaded from the first URI that works. */
  fetchBlob(req: FetchRequest): Promise<FetchOutcome> {
    return this.fetch('blob', req, (file, uri) => this.storeBlob(req, file, uri));
  }

  /** FetchDirectory: from the CAS when known, else the archive downloaded, verified and unpacked into the CAS. */
  fetchDirectory(req: FetchRequest): Promise<FetchOutcome> {
    return this.fetch('directory', req, (file, uri) => this.unpack(req, file, uri), () => this.archiveFromCas(req));
  }

  private async fetch(
    kind: AssetKind,
    req: FetchRequest,
    use: (file: Downloaded, uri: string) => Promise<FetchOutcome>,
    local?: () => Promise<Downloaded | undefined>,
  ): Promise<FetchOutcome> {
    const started = this.opts.clock.now();
    const known = await this.known(kind, req);
    if (known) {
      this.report(req, known, started);
      return known;
    }
    // Identical requests share one download.
    const key = `${kind}\n${req.qualifiers.sha256 ?? req.uris.join(' ')}\n${req.qualifiers.cacheKey}`;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.download(req, use, local).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    const outcome = await pending;
    this.report(req, outcome, started);
    return outcome;
  }

  /** PushBlob / PushDirectory: remember that these URIs hold `digest` (already in the CAS). */
  push(kind: AssetKind, uris: string[], qualifiers: AssetQualifiers, digest: BlobDigest, expiresAt?: number): Promise<void> {
    const sha256 = qualifiers.sha256 && checksumKey(kind, qualifiers, qualifiers.sha256);
    return this.opts.index.record(uris, qualifiers.cacheKey, { kind, digest, storedAt: this.opts.clock.now(), expiresAt }, sha256);
  }

  /** Waits for index writes (tests, shutdown). */
  flush(): Promise<void> {
    return this.opts.index.flush();
  }

  /** An index entry whose content is still in the CAS and young enough, as an outcome. */
  private async known(kind: AssetKind, req: FetchRequest): Promise<FetchOutcome | undefined> {
    const { index, store, clock } = this.opts;
    const candidates: [string, ReturnType<AssetIndex['byUri']>][] = [];
    if (req.qualifiers.sha256) candidates.push([req.uris[0] ?? '', index.byChecksum(kind, req.fn.name, checksumKey(kind, req.qualifiers, req.qualifiers.sha256))]);
    for (const uri of req.uris) candidates.push([uri, index.byUri(kind, uri, req.qualifiers.cacheKey)]);
    for (const [uri, entry] of candidates) {
      if (!entry || entry.digest.fn !== req.fn.name) continue;
      if (req.oldestAcceptedMs !== undefined && entry.storedAt < req.oldestAcceptedMs) continue;
      if (entry.expiresAt !== undefined && entry.expiresAt <= clock.now()) continue;
      if (req.qualifiers.sha256 && kind === 'blob' && entry.digest.hash !== req.qualifiers.sha256) continue;
      if (await store.has(entry.digest)) return { ok: true, uri, digest: entry.digest, source: 'cache' };
    }
    return undefined;
  }

  /** Downloads from the first URI that works, checks the checksum, and hands the file to `use`. */
  private async download(
    req: FetchRequest,
    use: (file: Downloaded, uri: string) => Promise<FetchOutcome>,
    local?: () => Promise<Downloaded | undefined>,
  ): Promise<FetchOutcome> {
    await this.ready;
    // The content may be here already (an archive fetched with FetchBlob): no download, also when the origin is down.
    const here = await local?.();
    if (here) {
      try {
        return await use(here, req.uris[0] ?? '');
      } finally {
        await removeQuietly(here.path);
      }
    }
    const { maxDownloadBytes, defaultTimeoutMs, maxTimeoutMs, tmpDir } = this.opts;
    const timeoutMs = Math.min(req.timeoutMs || defaultTimeoutMs, maxTimeoutMs);
    let last: FetchOutcome = { ok: false, uri: req.uris[0] ?? '', failure: 'not-found', message: 'no URI to fetch' };
    for (const uri of req.uris) {
      if (req.signal?.aborted) break;
      let file;
      try {
        file = await downloadToFile(uri, { tmpDir, timeoutMs, maxBytes: maxDownloadBytes, signal: req.signal, refuseLoopback: this.opts.refuseLoopback });
      } catch (err) {
        if (!(err instanceof DownloadError)) throw err;
        last = { ok: false, uri, failure: err.kind, message: err.message };
        continue; // A mirror may have it.
      }
      try {
        const want = req.qualifiers.sha256;
        if (want && file.sha256 !== want) {
          last = { ok: false, uri, failure: 'checksum-mismatch', message: `${uri} has SHA-256 ${file.sha256}, not the ${want} that checksum.sri asks for; nothing was stored` };
          continue;
        }
        return await use(file, uri);
      } finally {
        await removeQuietly(file.path);
      }
    }
    return last;
  }

  private async storeBlob(req: FetchRequest, file: Downloaded, uri: string): Promise<FetchOutcome> {
    const digest = await this.store(file.path, file.size, file.sha256, req.fn);
    await this.remember('blob', req, uri, digest, file.sha256);
    return { ok: true, uri, digest, source: 'download' };
  }

  /** Unpacks a downloaded archive into the CAS; a damaged, unsafe or oversized one is refused whole. */
  private async unpack(req: FetchRequest, file: Downloaded, uri: string): Promise<FetchOutcome> {
    const { qualifiers } = req;
    try {
      const format: ArchiveFormat = qualifiers.archiveType
        ? formatFromQualifier('archive.type', qualifiers.archiveType)
        : qualifiers.resourceType && ARCHIVE_MIME.test(qualifiers.resourceType)
          ? formatFromQualifier('resource_type', qualifiers.resourceType)
          : await sniffFormat(file.path, uri);
      const digest = await unpackToCas(file.path, {
        store: this.opts.store,
        fn: req.fn,
        format,
        directory: qualifiers.directory,
        limits: { ...DEFAULT_UNPACK_LIMITS, ...this.opts.unpackLimits },
        tmpDir: this.opts.tmpDir,
      });
      await this.remember('directory', req, uri, digest, file.sha256);
      return { ok: true, uri, digest, source: 'download', bytes: file.size };
    } catch (err) {
      if (!(err instanceof ArchiveError)) throw err;
      return { ok: false, uri, failure: err.kind === 'too-large' ? 'archive-too-large' : 'bad-archive', message: `${uri}: ${err.message}` };
    }
  }

  /** URL → digest (the URI that worked first, then the others), and the content's checksum → digest. */
  private remember(kind: AssetKind, req: FetchRequest, uri: string, digest: BlobDigest, sha256: string): Promise<void> {
    return this.opts.index.record([uri, ...req.uris.filter((u) => u !== uri)], req.qualifiers.cacheKey, { kind, digest, storedAt: this.opts.clock.now() }, checksumKey(kind, req.qualifiers, sha256));
  }

  /** The archive `checksum.sri` names, copied out of the CAS into a temp file, when a FetchBlob stored it. */
  private async archiveFromCas(req: FetchRequest): Promise<Downloaded | undefined> {
    const sha256 = req.qualifiers.sha256;
    if (!sha256 || req.fn.name !== 'sha256') return undefined;
    const entry = this.opts.index.byChecksum('blob', 'sha256', sha256);
    if (!entry || entry.digest.hash !== sha256 || !(await this.opts.store.has(entry.digest))) return undefined;
    const path = uniqueTempPath(this.opts.tmpDir, 'archive');
    try {
      await pipeline(await this.opts.store.read(entry.digest), createWriteStream(path, { flags: 'wx', mode: 0o600 }));
      return { path, size: entry.digest.size, sha256 };
    } catch (err) {
      await removeQuietly(path);
      if (err instanceof BlobNotFoundError) return undefined; // evicted meanwhile: download it
      throw err;
    }
  }

  /** Puts the downloaded file into the CAS under `fn` (hashing again for a function other than SHA-256). */
  private async store(path: string, size: number, sha256: string, fn: DigestFunctionInfo): Promise<BlobDigest> {
    let hash = sha256;
    if (fn.name !== 'sha256') {
      const hasher = await fn.createHasher();
      for await (const chunk of createReadStream(path)) hasher.update(chunk as Buffer);
      hash = hasher.digest();
    }
    const digest: BlobDigest = { fn: fn.name, hash, size };
    if (!(await this.opts.store.has(digest))) await this.opts.store.write(digest, createReadStream(path));
    return digest;
  }

  private report(req: FetchRequest, outcome: FetchOutcome, started: number): void {
    const at = this.opts.clock.now();
    this.opts.events.emit({
      type: 'asset.fetched',
      at,
      uri: outcome.uri,
      outcome: outcome.ok ? (outcome.source === 'cache' ? 'hit' : 'downloaded') : 'failed',
      bytes: outcome.ok ? (outcome.bytes ?? outcome.digest.size) : undefined,
      durationMs: at - started,
      toolInvocationId: req.toolInvocationId,
      message: outcome.ok ? undefined : outcome.message,
    });
  }
}

/** The checksum index key: an archive's content, and for a directory also which subfolder and how it was unpacked. */
function checksumKey(kind: AssetKind, q: AssetQualifiers, sha256: string): string {
  return kind === 'blob' ? sha256 : `${sha256}\n${q.archiveType ?? ''}\n${q.directory}`;
}
