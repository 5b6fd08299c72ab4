// The directory tree an archive unpacks to, kept as names and digests (the file
// bytes are already in the CAS), checked as it grows: no absolute paths, no "..",
// no symlink that leads out of the tree, no entry below a file or a symlink,
// and the bounds on entries and depth. At the end it becomes REAPI Directory
// messages, names sorted byte-wise as the spec asks, each stored in the CAS.
import { isEmptyBlob, toWireDigest, type BlobDigest, type DigestFunctionInfo } from '../digest';
import { encode, reapi } from '../proto';
import type { BlobStore } from '../store/blob-store';
import { ArchiveError } from './archive-entry';

interface FileLeaf {
  digest: BlobDigest;
  executable: boolean;
}

interface DirNode {
  dirs: Map<string, DirNode>;
  files: Map<string, FileLeaf>;
  symlinks: Map<string, string>;
}

const newDir = (): DirNode => ({ dirs: new Map(), files: new Map(), symlinks: new Map() });

/**
 * The components of a path as an archive names it ("./a//b/" → ["a", "b"]).
 * Absolute paths, drive letters, ".." and NUL are refused: such an entry could
 * write outside the folder the archive is unpacked into.
 */
export function archivePathComponents(raw: string): string[] {
  if (raw.includes('\0')) throw new ArchiveError('invalid', `entry ${JSON.stringify(raw)} has a NUL byte in its name`);
  if (raw.startsWith('/') || /^[A-Za-z]:[\\/]?/.test(raw) || raw.startsWith('\\')) {
    throw new ArchiveError('invalid', `entry "${raw}" has an absolute path; archive paths must be relative`);
  }
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new ArchiveError('invalid', `entry "${raw}" contains "..", which would leave the unpacked folder`);
  return parts;
}

export class ArchiveTree {
  private readonly root = newDir();
  private readonly prefix: string[];
  /** Something was found at or under the prefix. */
  private sawPrefix: boolean;

  constructor(
    /** The subfolder that becomes the root (the "directory" qualifier); "" for the whole archive. */
    private readonly prefixPath: string,
    private readonly maxDepth: number,
  ) {
    this.prefix = archivePathComponents(prefixPath);
    this.sawPrefix = this.prefix.length === 0;
  }

  /** Where an archive path lands in the tree: its components below the prefix, or undefined when outside it. */
  place(raw: string): string[] | undefined {
    const parts = archivePathComponents(raw);
    if (parts.length < this.prefix.length || this.prefix.some((p, i) => parts[i] !== p)) {
      // A file at exactly the prefix, or a parent of it, is not inside.
      return undefined;
    }
    this.sawPrefix = true;
    const inside = parts.slice(this.prefix.length);
    if (inside.length > this.maxDepth) {
      throw new ArchiveError('invalid', `entry "${raw}" is ${inside.length} levels deep; Kiln unpacks at most ${this.maxDepth}`);
    }
    return inside;
  }

  addDirectory(parts: string[]): void {
    this.dir(parts, parts.length);
  }

  addFile(parts: string[], leaf: FileLeaf): void {
    const { parent, name } = this.leafSlot(parts);
    parent.symlinks.delete(name);
    parent.files.set(name, leaf); // A later entry of the same name replaces the earlier one, as tar does.
  }

  /** A symlink; its target must be relative and stay inside the tree. */
  addSymlink(parts: string[], target: string): void {
    checkLinkTarget(parts, target);
    const { parent, name } = this.leafSlot(parts);
    parent.files.delete(name);
    parent.symlinks.set(name, target);
  }

  /** The file a hard link repeats (an earlier entry), or undefined. */
  fileAt(parts: string[]): FileLeaf | undefined {
    if (parts.length === 0) return undefined;
    let node: DirNode | undefined = this.root;
    for (const p of parts.slice(0, -1)) node = node?.dirs.get(p);
    return node?.files.get(parts[parts.length - 1]!);
  }

  /** Stores every Directory message and answers the root's digest. */
  async store(store: BlobStore, fn: DigestFunctionInfo): Promise<BlobDigest> {
    if (!this.sawPrefix) throw new ArchiveError('invalid', `the archive has nothing under the directory "${this.prefixPath}" the request names`);
    const written = new Set<string>();
    const visit = async (node: DirNode): Promise<BlobDigest> => {
      const message = reapi.Directory.create();
      for (const name of sortedNames(node.files)) {
        const leaf = node.files.get(name)!;
        message.files.push(reapi.FileNode.create({ name, digest: toWireDigest(leaf.digest), isExecutable: leaf.executable }));
      }
      for (const name of sortedNames(node.dirs)) {
        message.directories.push(reapi.DirectoryNode.create({ name, digest: toWireDigest(await visit(node.dirs.get(name)!)) }));
      }
      for (const name of sortedNames(node.symlinks)) message.symlinks.push(reapi.SymlinkNode.create({ name, target: node.symlinks.get(name)! }));
      const bytes = encode(reapi.Directory, message);
      const hasher = await fn.createHasher();
      hasher.update(bytes);
      const digest: BlobDigest = { fn: fn.name, hash: hasher.digest(), size: bytes.length };
      if (!written.has(digest.hash) && !isEmptyBlob(digest)) {
        written.add(digest.hash);
        await store.writeAll(digest, bytes);
      }
      return digest;
    };
    return visit(this.root);
  }

  /** The folder at `parts[0..depth)`, made on the way; a file or symlink in the way is an error. */
  private dir(parts: string[], depth: number): DirNode {
    let node = this.root;
    for (let i = 0; i < depth; i++) {
      const name = parts[i]!;
      if (node.files.has(name) || node.symlinks.has(name)) {
        throw new ArchiveError('invalid', `"${parts.slice(0, i + 1).join('/')}" is a file or symlink, yet the archive has entries below it`);
      }
      let child = node.dirs.get(name);
      if (!child) {
        child = newDir();
        node.dirs.set(name, child);
      }
      node = child;
    }
    return node;
  }

  private leafSlot(parts: string[]): { parent: DirNode; name: string } {
    const name = parts[parts.length - 1];
    if (name === undefined) throw new ArchiveError('invalid', 'the archive has a file where its root folder should be');
    const parent = this.dir(parts, parts.length - 1);
    if (parent.dirs.has(name)) throw new ArchiveError('invalid', `"${parts.join('/')}" is both a folder and a file in the archive`);
    return { parent, name };
  }
}

/**
 * A link target stays inside when it is relative, climbs ("..") only at its
 * start and no higher than the link's own folder, and then only descends. A ".."
 * after a name is refused: through another symlink it could climb further than
 * it reads.
 */
function checkLinkTarget(parts: string[], target: string): void {
  const where = parts.join('/');
  if (target === '') throw new ArchiveError('invalid', `symlink "${where}" has an empty target`);
  if (target.startsWith('/') || /^[A-Za-z]:[\\/]/.test(target)) {
    throw new ArchiveError('invalid', `symlink "${where}" points to the absolute path "${target}"; links must stay inside the archive`);
  }
  const segments = target.split('/').filter((s) => s !== '' && s !== '.');
  let ups = 0;
  while (segments[ups] === '..') ups++;
  if (segments.slice(ups).includes('..')) {
    throw new ArchiveError('invalid', `symlink "${where}" → "${target}" has ".." after a name; Kiln accepts links that climb only at their start`);
  }
  if (ups > parts.length - 1) throw new ArchiveError('invalid', `symlink "${where}" → "${target}" points outside the unpacked folder`);
}

function sortedNames(map: Map<string, unknown>): string[] {
  return [...map.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}
