// Copies what reaches the local store (Bazel's uploads, local actions' outputs
// and results) to the upstream in the background. Adding never waits on the
// network: the queue is bounded (beyond its limit new work is dropped and
// counted, the local cache is still right), kept in a file so a restart picks
// up where it stopped, and retried while the upstream is unreachable.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIGEST_FUNCTIONS, digestKey, validateHashAndSize, type BlobDigest } from '../digest';
import { BlobNotFoundError, type BlobStore } from '../store/blob-store';
import type { ActionCacheStore } from '../store/action-cache-store';
import { writeFileAtomic } from '../util/atomic-file';
import { localResultBlobs } from './result-blobs';
import { UpstreamUnreachableError, type UpstreamClient } from './upstream-client';

export type WriteThroughItem = { kind: 'blob'; digest: BlobDigest } | { kind: 'action'; instance: string; digest: BlobDigest };

export interface WriteThroughOptions {
  upstream: UpstreamClient;
  /** The local stores, undecorated: reading them must not enqueue anything. */
  store: BlobStore;
  actionCache: Pick<ActionCacheStore, 'get'>;
  /** Folder of the queue file (`upstream-queue.json`). */
  dir: string;
  maxItems?: number;
  /** Wait after the upstream was unreachable before trying again. */
  retryMs?: number;
  log?: (line: string) => void;
}

const QUEUE_FILE = 'upstream-queue.json';
const DEFAULT_MAX_ITEMS = 100_000;
/** Blobs checked with one FindMissingBlobs. */
const BATCH = 200;
/** The queue file is rewritten at most this often (and at close): a crash loses at most this much of its changes. */
const SAVE_EVERY_MS = 500;

export class WriteThroughQueue {
  private readonly items = new Map<string, WriteThroughItem>();
  private readonly maxItems: number;
  private dropped = 0;
  private running?: Promise<void>;
  private saveTimer?: NodeJS.Timeout;
  private saving: Promise<void> = Promise.resolve();
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private retryTimer?: NodeJS.Timeout;

  constructor(private readonly opts: WriteThroughOptions) {
    this.maxItems = opts.maxItems ?? DEFAULT_MAX_ITEMS;
    for (const item of loadQueue(join(opts.dir, QUEUE_FILE), opts.log)) this.items.set(keyOf(item), item);
    this.kick();
  }

  /** Items waiting to be copied. */
  get pending(): number {
    return this.items.size;
  }

  /** Items refused because the queue was full. */
  get droppedItems(): number {
    return this.dropped;
  }

  /** Queues `item`; returns at once. */
  add(item: WriteThroughItem): void {
    if (this.closed) return;
    const key = keyOf(item);
    if (this.items.has(key)) return;
    if (this.items.size >= this.maxItems) {
      if (this.dropped++ === 0) this.opts.log?.(`kiln: the upstream write-through queue is full (${this.maxItems} items); new uploads are skipped until it drains`);
      return;
    }
    this.items.set(key, item);
    this.scheduleSave();
    this.kick();
  }

  /** Resolves when nothing is waiting (tests, shutdown). */
  drained(): Promise<void> {
    if (this.items.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.saveTimer) clearTimeout(this.saveTimer);
    await this.save();
  }

  private kick(): void {
    if (this.running || this.closed || this.items.size === 0) return;
    this.running = this.work().finally(() => {
      this.running = undefined;
      if (this.items.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  private async work(): Promise<void> {
    while (!this.closed && this.items.size > 0) {
      const batch = [...this.items.values()].slice(0, BATCH);
      try {
        await this.copy(batch);
      } catch (err) {
        if (err instanceof UpstreamUnreachableError) {
          // Everything stays queued; try again later (the queue file keeps it across a restart).
          const retryMs = this.opts.retryMs ?? 5_000;
          this.retryTimer = setTimeout(() => this.kick(), retryMs);
          this.retryTimer.unref();
          return;
        }
        // Shutting down: the calls failed because of it; the items stay in the queue file.
        if (this.closed) return;
        // Anything else concerns these items only: report and drop them, keep going.
        this.opts.log?.(`kiln: could not copy ${batch.length} item(s) to the upstream: ${(err as Error).message}`);
      }
      for (const item of batch) this.items.delete(keyOf(item));
      this.scheduleSave();
    }
  }

  private async copy(batch: WriteThroughItem[]): Promise<void> {
    const { upstream, store } = this.opts;
    const blobs: BlobDigest[] = [];
    const actions = batch.filter((i): i is Extract<WriteThroughItem, { kind: 'action' }> => i.kind === 'action');
    for (const item of batch) if (item.kind === 'blob') blobs.push(item.digest);
    const results = [];
    for (const a of actions) {
      const result = await this.opts.actionCache.get(a.instance, a.digest);
      if (!result) continue; // Evicted meanwhile: nothing to copy.
      results.push({ a, result });
      blobs.push(...(await localResultBlobs(store, result, DIGEST_FUNCTIONS[a.digest.fn]).catch(() => [])));
    }
    for (const fn of new Set(blobs.map((d) => d.fn))) {
      const missing = await upstream.findMissing(blobs.filter((d) => d.fn === fn));
      const present = await store.findMissing(missing).then((gone) => missing.filter((d) => !gone.some((g) => digestKey(g) === digestKey(d))));
      await upstream.upload(store, present).catch((err) => {
        if (err instanceof BlobNotFoundError) return; // evicted locally between the checks
        throw err;
      });
    }
    // Results last, so the upstream never holds a result whose outputs it lacks.
    for (const { a, result } of results) await upstream.updateActionResult(a.digest, result);
  }

  private scheduleSave(): void {
    if (this.saveTimer || this.closed) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      void this.save();
    }, SAVE_EVERY_MS);
    this.saveTimer.unref();
  }

  private save(): Promise<void> {
    const snapshot = JSON.stringify([...this.items.values()]);
    this.saving = this.saving
      .then(() => writeFileAtomic(join(this.opts.dir, QUEUE_FILE), snapshot))
      .catch((err) => this.opts.log?.(`kiln: could not save the upstream queue: ${(err as Error).message}`));
    return this.saving;
  }
}

function keyOf(item: WriteThroughItem): string {
  return item.kind === 'blob' ? `b:${digestKey(item.digest)}` : `a:${item.instance}\u0000${digestKey(item.digest)}`;
}

/** The queue a previous run left; an unreadable file costs only those uploads. */
function loadQueue(path: string, log?: (line: string) => void): WriteThroughItem[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  try {
    const items = JSON.parse(text) as WriteThroughItem[];
    return Array.isArray(items) ? items.filter(isItem) : [];
  } catch (err) {
    log?.(`kiln: ignoring the unreadable upstream queue ${path}: ${(err as Error).message}`);
    return [];
  }
}

function isItem(x: unknown): x is WriteThroughItem {
  const i = x as WriteThroughItem;
  const d = i?.digest;
  let digestOk = false;
  try {
    validateHashAndSize(d.hash, d.size, DIGEST_FUNCTIONS[d.fn]);
    digestOk = true;
  } catch {
    // A damaged entry (unknown function, bad hash): skipped.
  }
  return digestOk && (i.kind === 'blob' || (i.kind === 'action' && typeof i.instance === 'string'));
}
