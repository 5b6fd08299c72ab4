// The Remote Asset behaviour without the wire: answer a URI (+ checksum) from
// the CAS when Kiln has the content, otherwise download it, verify it, store it
// and remember where it came from. One download per content at a time, however
// many builds ask for it at once.
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { Clock } from '../clock';
import type { BlobDigest, DigestFunctionInfo } from '../digest';
import type { EventSink } from '../events/event-bus';
import type { BlobStore } from '../store/blob-store';
import { removeQuietly, removeTempFiles } from '../util/atomic-file';
import type { AssetIndex, AssetKind } from './asset-index';
import { DownloadError, downloadToFile, type DownloadFailure } from './http-download';
import type { AssetQualifiers } from './qualifiers';

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
  | { ok: true; uri: string; digest: BlobDigest; source: 'cache' | 'download' }
  | { ok: false; uri: string; failure: DownloadFailure | 'checksum-mismatch' | 'not-pushed'; message: string };

export class AssetFetcher {
  private readonly inFlight = new Map<string, Promise<FetchOutcome>>();
  private ready: Promise<void>;

  constructor(private readonly opts: AssetFetcherOptions) {
    this.ready = mkdir(opts.tmpDir, { recursive: true }).then(() => removeTempFiles(opts.tmpDir).then(() => undefined));
  }

  /** FetchBlob: from the CAS when known, else downloaded from the first URI that works. */
  async fetchBlob(req: FetchRequest): Promise<FetchOutcome> {
    const started = this.opts.clock.now();
    const known = await this.known('blob', req);
    if (known) {
      this.report(req, known, started);
      return known;
    }
    // Identical requests share one download.
    const key = req.qualifiers.sha256 ?? `${req.uris.join(' ')}\n${req.qualifiers.cacheKey}`;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.download(req).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    const outcome = await pending;
    this.report(req, outcome, started);
    return outcome;
  }

  /** FetchDirectory: only what was pushed (Kiln does not unpack archives). */
  async fetchDirectory(req: FetchRequest): Promise<FetchOutcome> {
    const started = this.opts.clock.now();
    const outcome: FetchOutcome = (await this.known('directory', req)) ?? {
      ok: false,
      uri: req.uris[0] ?? '',
      failure: 'not-pushed',
      message: 'Kiln serves directories only when they were pushed (PushDirectory); it does not download and unpack archives',
    };
    this.report(req, outcome, started);
    return outcome;
  }

  /** PushBlob / PushDirectory: remember that these URIs hold `digest` (already in the CAS). */
  push(kind: AssetKind, uris: string[], qualifiers: AssetQualifiers, digest: BlobDigest, expiresAt?: number): Promise<void> {
    return this.opts.index.record(uris, qualifiers.cacheKey, { kind, digest, storedAt: this.opts.clock.now(), expiresAt }, qualifiers.sha256);
  }

  /** Waits for index writes (tests, shutdown). */
  flush(): Promise<void> {
    return this.opts.index.flush();
  }

  /** An index entry whose content is still in the CAS and young enough, as an outcome. */
  private async known(kind: AssetKind, req: FetchRequest): Promise<FetchOutcome | undefined> {
    const { index, store, clock } = this.opts;
    const candidates: [string, ReturnType<AssetIndex['byUri']>][] = [];
    if (req.qualifiers.sha256) candidates.push([req.uris[0] ?? '', index.byChecksum(kind, req.fn.name, req.qualifiers.sha256)]);
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

  private async download(req: FetchRequest): Promise<FetchOutcome> {
    await this.ready;
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
        const digest = await this.store(file.path, file.size, file.sha256, req.fn);
        await this.opts.index.record([uri, ...req.uris.filter((u) => u !== uri)], req.qualifiers.cacheKey,
          { kind: 'blob', digest, storedAt: this.opts.clock.now() }, file.sha256);
        return { ok: true, uri, digest, source: 'download' };
      } finally {
        await removeQuietly(file.path);
      }
    }
    return last;
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
      bytes: outcome.ok ? outcome.digest.size : undefined,
      durationMs: at - started,
      toolInvocationId: req.toolInvocationId,
      message: outcome.ok ? undefined : outcome.message,
    });
  }
}
