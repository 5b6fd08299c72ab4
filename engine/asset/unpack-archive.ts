// Unpacks a downloaded archive into the CAS: every file becomes a blob, every
// folder a Directory message, and the answer is the root Directory's digest.
// Nothing touches the file system but temp files for large bodies, so an
// archive cannot write outside anything: unsafe paths are refused, not skipped.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { BlobDigest, DigestFunctionInfo } from '../digest';
import type { BlobStore } from '../store/blob-store';
import { removeQuietly, uniqueTempPath, writeFully } from '../util/atomic-file';
import { ArchiveError, type ArchiveEntry, type ArchiveReader } from './archive-entry';
import type { ArchiveFormat } from './archive-format';
import { ArchiveTree } from './archive-tree';
import { readTarEntries } from './tar-entries';
import { readZipEntries } from './zip-entries';

export interface UnpackLimits {
  /** Entries of any kind. */
  maxEntries: number;
  /** File bytes once unpacked. */
  maxBytes: number;
  /** Path components below the root ("a/b/c" is 3). */
  maxDepth: number;
}

export interface UnpackOptions {
  store: BlobStore;
  fn: DigestFunctionInfo;
  format: ArchiveFormat;
  /** The subfolder that becomes the root ("" for all). */
  directory: string;
  limits: UnpackLimits;
  /** Folder for temp files of large bodies. */
  tmpDir: string;
}

/** Bodies up to this size are hashed in memory; larger ones go through a temp file. */
const IN_MEMORY_BYTES = 4 * 1024 * 1024;

const READERS: Record<ArchiveFormat, ArchiveReader> = { tar: readTarEntries, zip: readZipEntries };

export async function unpackToCas(file: string, opts: UnpackOptions): Promise<BlobDigest> {
  const { limits } = opts;
  const tree = new ArchiveTree(opts.directory, limits.maxDepth);
  let entries = 0;
  let bytes = 0;
  await READERS[opts.format](file, async (entry: ArchiveEntry) => {
    if (++entries > limits.maxEntries) throw new ArchiveError('too-large', `the archive has more than ${limits.maxEntries} entries, Kiln's limit`);
    const parts = tree.place(entry.path);
    if (!parts) return; // Outside the requested directory.
    switch (entry.kind) {
      case 'directory':
        if (parts.length > 0) tree.addDirectory(parts);
        return;
      case 'symlink':
        tree.addSymlink(parts, entry.linkTarget ?? '');
        return;
      case 'hardlink': {
        const target = tree.place(entry.linkTarget ?? '');
        const leaf = target && tree.fileAt(target);
        if (!leaf) throw new ArchiveError('invalid', `hard link "${entry.path}" repeats "${entry.linkTarget}", which is not an earlier file of the unpacked folder`);
        tree.addFile(parts, leaf);
        return;
      }
      case 'file': {
        bytes += entry.size;
        if (bytes > limits.maxBytes) throw new ArchiveError('too-large', `the archive unpacks to more than ${limits.maxBytes} bytes, Kiln's limit`);
        const digest = await storeBody(entry, opts);
        tree.addFile(parts, { digest, executable: (entry.mode & 0o111) !== 0 });
        return;
      }
    }
  });
  return tree.store(opts.store, opts.fn);
}

/** Hashes a file entry's body and puts it in the CAS. */
async function storeBody(entry: ArchiveEntry, opts: UnpackOptions): Promise<BlobDigest> {
  const hasher = await opts.fn.createHasher();
  const checkSize = (seen: number) => {
    if (seen > entry.size) throw new ArchiveError('invalid', `entry "${entry.path}" holds more than its recorded ${entry.size} bytes`);
  };
  const finish = (seen: number): BlobDigest => {
    if (seen !== entry.size) throw new ArchiveError('invalid', `entry "${entry.path}" holds ${seen} bytes, not its recorded ${entry.size}`);
    return { fn: opts.fn.name, hash: hasher.digest(), size: seen };
  };
  if (entry.size <= IN_MEMORY_BYTES) {
    const chunks: Buffer[] = [];
    let seen = 0;
    for await (const chunk of entry.body ?? []) {
      checkSize((seen += chunk.length));
      hasher.update(chunk);
      chunks.push(chunk);
    }
    const digest = finish(seen);
    if (!(await opts.store.has(digest))) await opts.store.writeAll(digest, Buffer.concat(chunks));
    return digest;
  }
  const path = uniqueTempPath(opts.tmpDir, 'unpack');
  try {
    const fh = await open(path, 'wx', 0o600);
    let seen = 0;
    try {
      for await (const chunk of entry.body ?? []) {
        checkSize((seen += chunk.length));
        hasher.update(chunk);
        await writeFully(fh, chunk);
      }
    } finally {
      await fh.close();
    }
    const digest = finish(seen);
    if (!(await opts.store.has(digest))) await opts.store.write(digest, createReadStream(path));
    return digest;
  } finally {
    await removeQuietly(path);
  }
}
