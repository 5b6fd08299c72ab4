// ActionCache service. A cached result is only a hit while every blob it names
// (outputs, stdout/stderr, every file of every output Tree) is still in the CAS:
// otherwise the client would get a result it cannot download, so it is a miss.
import type * as grpc from '@grpc/grpc-js';
import { systemClock, uuidIds, type Clock, type IdSource } from '../clock';
import { DIGEST_FUNCTIONS, DigestError, formatDigest, toBlobDigest, type BlobDigest, type DigestFunctionInfo, type DigestFunctionName } from '../digest';
import { cachedActionEvents, digestText } from '../events/cached-action';
import { nullSink, type EventSink } from '../events/event-bus';
import { AfterReplySink } from '../events/after-reply-sink';
import { requestMetadataOf, requestOrigin } from '../grpc/services';
import { reapi } from '../proto';
import { BlobNotFoundError, type BlobStore } from '../store/blob-store';
import type { ActionCacheStore } from '../store/action-cache-store';
import { invalidArgument, notFound, unary } from '../grpc/status';
import { requestDigest, requestDigestFunction, validateInstanceName } from './resource-names';

/** Total bytes GetActionResult inlines; keeps responses under a client's default 4 MiB limit. */
export const MAX_INLINE_BYTES = 1024 * 1024;

export interface ActionCacheOptions {
  store: BlobStore;
  actionCache: ActionCacheStore;
  events?: EventSink;
  clock?: Clock;
  /** Ids for the cached-action records of hits; the scheduler's source, so ids never collide. */
  ids?: IdSource;
}

export function createActionCacheService(opts: ActionCacheOptions): grpc.UntypedServiceImplementation {
  const { store, actionCache } = opts;
  // A lookup's bookkeeping (history, metrics, invocations) runs after the answer is sent.
  const events = new AfterReplySink(opts.events ?? nullSink);
  const clock = opts.clock ?? systemClock;
  const ids = opts.ids ?? uuidIds;

  return {
    // Answered with the stored bytes when nothing is inlined: no second encoding of the result.
    getActionResult: unary<reapi.GetActionResultRequest, reapi.ActionResult | Uint8Array>(async (req, call) => {
      validateInstanceName(req.instanceName);
      const fn = requestDigestFunction(req.digestFunction);
      const actionDigest = requestDigest(req.actionDigest, fn, 'action_digest');
      const stored = actionCache.getWithBytes
        ? await actionCache.getWithBytes(req.instanceName, actionDigest)
        : undefined;
      const cached = actionCache.getWithBytes ? stored?.result : await actionCache.get(req.instanceName, actionDigest);
      const hit = cached !== undefined && (await isActionResultComplete(store, cached, fn.name));
      events.emit({ type: 'cache.lookup', at: clock.now(), store: 'ac', hit, instance: req.instanceName });
      if (!cached || !hit) {
        const why = cached ? 'its outputs are no longer all in the CAS' : 'no result is cached';
        throw notFound(`action ${actionDigest.hash}/${actionDigest.size}: ${why}`);
      }
      // A hit is an action Bazel did not have to run: count and list it as one (outcome cached).
      const facts = cachedActionEvents({
        id: ids.next(),
        at: clock.now(),
        actionDigest: formatDigest(actionDigest),
        instance: req.instanceName,
        origin: requestOrigin(requestMetadataOf(call.metadata)),
        exitCode: cached.exitCode,
        stdoutDigest: digestText(cached.stdoutDigest),
        stderrDigest: digestText(cached.stderrDigest),
      });
      for (const e of facts) events.emit(e);
      const inlining = req.inlineStdout || req.inlineStderr || req.inlineOutputFiles.length > 0;
      if (stored && !inlining) return stored.bytes;
      await inlineRequested(store, cached, req, fn);
      return cached;
    }),

    updateActionResult: unary<reapi.UpdateActionResultRequest, reapi.ActionResult>(async (req) => {
      validateInstanceName(req.instanceName);
      const fn = requestDigestFunction(req.digestFunction);
      const actionDigest = requestDigest(req.actionDigest, fn, 'action_digest');
      if (!req.actionResult) throw invalidArgument('action_result is missing', 'action_result');
      const result = reapi.ActionResult.create(req.actionResult);
      validateActionResult(result, fn);
      await actionCache.put(req.instanceName, actionDigest, result);
      return result;
    }),
  };
}

/**
 * True when every blob `result` refers to is in the CAS, including each file
 * inside each output directory's Tree. Malformed digests count as missing.
 */
export async function isActionResultComplete(
  store: BlobStore,
  result: reapi.ActionResult.$Properties,
  fn: DigestFunctionName | DigestFunctionInfo,
): Promise<boolean> {
  const info = typeof fn === 'string' ? DIGEST_FUNCTIONS[fn] : fn;
  const direct: BlobDigest[] = [];
  const trees: BlobDigest[] = [];
  try {
    for (const f of result.outputFiles ?? []) direct.push(toBlobDigest(f.digest, info));
    if (result.stdoutDigest) direct.push(toBlobDigest(result.stdoutDigest, info));
    if (result.stderrDigest) direct.push(toBlobDigest(result.stderrDigest, info));
    for (const d of result.outputDirectories ?? []) trees.push(toBlobDigest(d.treeDigest, info));
  } catch (err) {
    if (err instanceof DigestError) return false;
    throw err;
  }
  if ((await store.findMissing([...direct, ...trees])).length > 0) return false;

  for (const treeDigest of trees) {
    const files = await treeFileDigests(store, treeDigest, info);
    if (!files || (await store.findMissing(files)).length > 0) return false;
  }
  return true;
}

/** Digests of every file in a Tree blob; undefined when the Tree is gone or garbled. */
async function treeFileDigests(
  store: BlobStore,
  treeDigest: BlobDigest,
  fn: DigestFunctionInfo,
): Promise<BlobDigest[] | undefined> {
  let data: Buffer;
  try {
    data = await store.readAll(treeDigest);
  } catch (err) {
    if (err instanceof BlobNotFoundError) return undefined; // Evicted since the presence check.
    throw err;
  }
  try {
    const tree = reapi.Tree.decode(data);
    const files: BlobDigest[] = [];
    for (const dir of [tree.root, ...tree.children]) {
      for (const file of dir?.files ?? []) files.push(toBlobDigest(file.digest, fn));
    }
    return files;
  } catch {
    return undefined; // Not a Tree, or a file digest that is not valid: nothing a client could use.
  }
}

/** Fills stdout_raw / stderr_raw / output file contents the client asked for, within MAX_INLINE_BYTES. */
async function inlineRequested(
  store: BlobStore,
  result: reapi.ActionResult,
  req: reapi.GetActionResultRequest,
  fn: DigestFunctionInfo,
): Promise<void> {
  let budget = MAX_INLINE_BYTES;
  const take = async (d: reapi.Digest.$Properties | null | undefined): Promise<Buffer | undefined> => {
    if (!d) return undefined;
    const digest = toBlobDigest(d, fn);
    if (digest.size > budget) return undefined;
    budget -= digest.size;
    return store.readAll(digest);
  };
  if (req.inlineStdout && result.stdoutRaw.byteLength === 0) result.stdoutRaw = (await take(result.stdoutDigest)) ?? result.stdoutRaw;
  if (req.inlineStderr && result.stderrRaw.byteLength === 0) result.stderrRaw = (await take(result.stderrDigest)) ?? result.stderrRaw;
  const wanted = new Set(req.inlineOutputFiles);
  for (const file of result.outputFiles) {
    if (wanted.has(file.path ?? '') && !file.contents?.byteLength) file.contents = (await take(file.digest)) ?? file.contents;
  }
}

/** INVALID_ARGUMENT naming the first bad field of a result a client wants cached. */
function validateActionResult(result: reapi.ActionResult, fn: DigestFunctionInfo): void {
  result.outputFiles.forEach((f, i) => {
    validateOutputPath(f.path ?? '', `action_result.output_files[${i}].path`);
    requestDigest(f.digest, fn, `action_result.output_files[${i}].digest`);
  });
  result.outputDirectories.forEach((d, i) => {
    validateOutputPath(d.path ?? '', `action_result.output_directories[${i}].path`, true);
    requestDigest(d.treeDigest, fn, `action_result.output_directories[${i}].tree_digest`);
  });
  for (const [list, name] of [
    [result.outputSymlinks, 'output_symlinks'],
    [result.outputFileSymlinks, 'output_file_symlinks'],
    [result.outputDirectorySymlinks, 'output_directory_symlinks'],
  ] as const) {
    list.forEach((s, i) => validateOutputPath(s.path ?? '', `action_result.${name}[${i}].path`));
  }
  if (result.stdoutDigest) requestDigest(result.stdoutDigest, fn, 'action_result.stdout_digest');
  if (result.stderrDigest) requestDigest(result.stderrDigest, fn, 'action_result.stderr_digest');
}

function validateOutputPath(path: string, field: string, allowEmpty = false): void {
  if (path === '' && allowEmpty) return; // An output directory may be the working directory itself.
  const bad =
    path === '' || path.startsWith('/') || path.split('/').some((s) => s === '' || s === '.' || s === '..');
  if (bad) {
    throw invalidArgument(`${field} "${path}" must be a relative path without empty, "." or ".." segments`, field);
  }
}
