// Puts input trees straight into a BlobStore for worker tests.
import { digestOf, toWireDigest, type BlobDigest } from '../../engine/digest';
import { encode, reapi } from '../../engine/proto';
import type { BlobStore } from '../../engine/store/blob-store';

export type Entry = string | { content: string; executable?: boolean } | { symlink: string } | Tree;
export interface Tree {
  [name: string]: Entry;
}

export async function putBlob(store: BlobStore, data: Buffer | string): Promise<BlobDigest> {
  const buf = Buffer.from(data);
  const d = await digestOf(buf);
  await store.writeAll(d, buf);
  return d;
}

export async function putMessage<T>(store: BlobStore, type: { encode(m: T): { finish(): Uint8Array } }, msg: T): Promise<BlobDigest> {
  return putBlob(store, encode(type as never, msg));
}

/** Stores every file and Directory of `tree` (children sorted as the spec requires) and returns the root digest. */
export async function putTree(store: BlobStore, tree: Tree): Promise<BlobDigest> {
  const dir = reapi.Directory.create();
  for (const name of Object.keys(tree).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
    const e = tree[name];
    if (typeof e === 'string' || 'content' in e) {
      const content = typeof e === 'string' ? e : (e.content as string);
      const d = await putBlob(store, content);
      dir.files.push(reapi.FileNode.create({ name, digest: toWireDigest(d), isExecutable: typeof e !== 'string' && !!e.executable }));
    } else if ('symlink' in e && typeof e.symlink === 'string') {
      dir.symlinks.push(reapi.SymlinkNode.create({ name, target: e.symlink }));
    } else {
      const d = await putTree(store, e as Tree);
      dir.directories.push(reapi.DirectoryNode.create({ name, digest: toWireDigest(d) }));
    }
  }
  return putMessage(store, reapi.Directory, dir);
}

export function command(argv: string[], opts: Partial<reapi.Command.$Properties> = {}): reapi.Command {
  return reapi.Command.create({ arguments: argv, ...opts });
}
