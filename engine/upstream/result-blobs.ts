// The blobs an ActionResult refers to (output files, each output directory's
// Tree and every file in it, stdout and stderr), and copying the ones one side
// lacks: upstream → local after a remote run or an action-cache read-through,
// local → upstream for the write-through queue.
import { toBlobDigest, digestKey, isEmptyBlob, type BlobDigest, type DigestFunctionInfo } from '../digest';
import { reapi } from '../proto';
import type { ActionOutputSummary } from '../common/action-vocabulary';
import type { BlobStore } from '../store/blob-store';
import type { UpstreamClient } from './upstream-client';

/**
 * Copies every blob of `result` the local `store` lacks from the upstream (trees
 * first, since they name the files below them); returns the dashboard's summary.
 */
export async function copyResultBlobs(
  upstream: UpstreamClient,
  store: BlobStore,
  result: reapi.ActionResult.$Properties,
  fn: DigestFunctionInfo,
): Promise<ActionOutputSummary[]> {
  const { digests, summary } = await listResultBlobs(result, fn, async (tree) => {
    if (!(await store.has(tree))) await upstream.download(store, tree);
    return store.readAll(tree);
  });
  for (const d of await store.findMissing(digests)) await upstream.download(store, d);
  return summary;
}

/** Every blob of `result`, reading its Trees from the local `store` (for uploads). */
export async function localResultBlobs(store: BlobStore, result: reapi.ActionResult.$Properties, fn: DigestFunctionInfo): Promise<BlobDigest[]> {
  return (await listResultBlobs(result, fn, (tree) => store.readAll(tree))).digests;
}

async function listResultBlobs(
  result: reapi.ActionResult.$Properties,
  fn: DigestFunctionInfo,
  readTree: (tree: BlobDigest) => Promise<Buffer>,
): Promise<{ digests: BlobDigest[]; summary: ActionOutputSummary[] }> {
  const wanted: BlobDigest[] = [];
  const summary: ActionOutputSummary[] = [];
  for (const f of result.outputFiles ?? []) {
    const d = toBlobDigest(f.digest, fn, 'output_files.digest');
    wanted.push(d);
    summary.push({ path: f.path ?? '', kind: 'file', bytes: d.size });
  }
  for (const dir of result.outputDirectories ?? []) {
    const treeDigest = toBlobDigest(dir.treeDigest, fn, 'output_directories.tree_digest');
    wanted.push(treeDigest);
    const tree = reapi.Tree.decode(await readTree(treeDigest));
    let bytes = 0;
    for (const d of [tree.root, ...tree.children]) {
      for (const file of d?.files ?? []) {
        const fd = toBlobDigest(file.digest, fn, 'tree file digest');
        wanted.push(fd);
        bytes += fd.size;
      }
    }
    summary.push({ path: dir.path ?? '', kind: 'directory', bytes });
  }
  for (const s of [...(result.outputSymlinks ?? []), ...(result.outputFileSymlinks ?? []), ...(result.outputDirectorySymlinks ?? [])]) {
    summary.push({ path: s.path ?? '', kind: 'symlink', bytes: 0 });
  }
  for (const d of [result.stdoutDigest, result.stderrDigest]) if (d?.hash) wanted.push(toBlobDigest(d, fn));
  return { digests: uniqueDigests(wanted).filter((d) => !isEmptyBlob(d)), summary };
}

export function uniqueDigests(digests: BlobDigest[]): BlobDigest[] {
  const seen = new Map<string, BlobDigest>();
  for (const d of digests) seen.set(digestKey(d), d);
  return [...seen.values()];
}
