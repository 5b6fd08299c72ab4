// What an action promises to produce: checking the requested output paths,
// creating their parent folders before the run, and collecting what exists
// afterwards into the CAS (files, directories as Trees, symlinks as symlinks).
// Reading never follows a symlink, so an output cannot leak files from outside
// the exec root.
import { lstat, readdir, readlink } from 'node:fs/promises';
import { posix, join } from 'node:path';
import type { ActionOutputSummary } from '../common/action-vocabulary';
import { DIGEST_FUNCTIONS, toWireDigest, type BlobDigest, type DigestFunctionName } from '../digest';
import { GrpcError, invalidArgument, Status } from '../grpc/status';
import { encode, reapi } from '../proto';
import type { BlobStore } from '../store/blob-store';
import { SyncBudget } from '../util/sync-batches';
import { fileNameProblem, shownName, utf8Name } from './file-names';
import { compareNames } from './input-tree';
import { lstatNoFollow, mkdirsNoFollow, NotADirectoryOnPath, readSmallNoFollow, readStreamNoFollow, type KnownEntries } from './no-follow';


export interface RequestedOutput {
  /** Relative to the working directory. */
  path: string;
  /** v2.1 output_paths: decided after the run; v2.0: what the client declared. */
  declared: 'any' | 'file' | 'directory';
}

/** The outputs a Command asks for: output_paths when set, else the v2.0 fields. */
export function requestedOutputs(command: reapi.Command): RequestedOutput[] {
  if (command.outputPaths.length > 0) return command.outputPaths.map((path) => ({ path, declared: 'any' as const }));
  return [
    ...command.outputFiles.map((path) => ({ path, declared: 'file' as const })),
    ...command.outputDirectories.map((path) => ({ path, declared: 'directory' as const })),
  ];
}

/** Rejects a Command whose paths could escape the exec root. Throws INVALID_ARGUMENT. */
export function validateCommand(command: reapi.Command): void {
  if (command.arguments.length === 0 || !command.arguments[0]) {
    throw invalidArgument('command has no arguments: arguments[0] must name the program to run', 'arguments');
  }
  if (command.arguments.some((a) => a.includes('\0'))) throw invalidArgument('command arguments may not contain NUL bytes', 'arguments');
  for (const e of command.environmentVariables) {
    if (!e.name || e.name.includes('=') || e.name.includes('\0') || (e.value ?? '').includes('\0')) {
      throw invalidArgument(`environment variable "${e.name}" is not valid (empty, or contains '=' or NUL)`, 'environment_variables');
    }
  }
  checkRelative(command.workingDirectory, 'working_directory', true);
  for (const o of requestedOutputs(command)) {
    const field = o.declared === 'any' ? 'output_paths' : o.declared === 'file' ? 'output_files' : 'output_directories';
    checkRelative(o.path, field, o.declared === 'directory');
  }
}

function checkRelative(path: string, field: string, emptyAllowed: boolean): void {
  if (path === '' && emptyAllowed) return;
  const bad =
    path === '' ||
    path.startsWith('/') ||
    path.endsWith('/') ||
    path.includes('\0') ||
    path.split('/').some((seg) => seg === '..' || seg === '' || seg === '.');
  if (bad) {
    throw invalidArgument(`${field}: "${path}" must be a relative path without "." or ".." segments, leading or trailing slashes`, field);
  }
  for (const seg of path.split('/')) {
    const problem = fileNameProblem(seg);
    if (problem) throw invalidArgument(`${field}: ${shownName(path)}: the name ${shownName(seg)} ${problem}`, field);
  }
}

/**
 * Creates the parent folders of every output (and, for v2.0, not the output directories
 * themselves). Returns the folders that now exist on the outputs' paths, relative to workDir.
 */
export async function prepareOutputDirs(workDir: string, outputs: RequestedOutput[], known?: KnownEntries): Promise<string[]> {
  const made = new Set<string>();
  const budget = new SyncBudget();
  // What staging made needs no lstat, nor does a folder made here for an earlier output.
  const knownOrMade: KnownEntries = (rel) => (made.has(rel) ? 'directory' : known?.(rel));
  for (const o of outputs) {
    const parent = posix.dirname(o.path);
    if (parent === '.' || o.path === '') continue;
    try {
      // Never through a symlink: input symlinks could otherwise steer mkdir outside the exec root.
      await mkdirsNoFollow(workDir, parent, knownOrMade, budget);
      for (let p = parent; p !== '.'; p = posix.dirname(p)) made.add(p);
    } catch (err) {
      if (!(err instanceof NotADirectoryOnPath)) throw err;
      throw invalidArgument(
        `output "${o.path}": its parent "${err.segmentPath}" is a ${err.kind} in the input tree; the parents of an output must be directories`,
        'output_paths',
      );
    }
  }
  return [...made];
}

export interface CollectedOutputs {
  files: reapi.OutputFile[];
  directories: reapi.OutputDirectory[];
  symlinks: reapi.OutputSymlink[];
  /** For the dashboard: every top-level output with its size. */
  summary: ActionOutputSummary[];
}

/**
 * Files up to this size are read into memory once, hashed there and written
 * with writeAll; larger ones are streamed twice (hash, then upload). Most
 * outputs and logs are this small, and one read saves a second open and a
 * stream's machinery per file.
 */
export const SMALL_FILE_BYTES = 256 * 1024;

/** Hashes a file and puts it in the store: small files from one read, larger ones streamed. */
export async function uploadFile(store: BlobStore, path: string, fn: DigestFunctionName, size: number): Promise<BlobDigest> {
  if (size <= SMALL_FILE_BYTES) return uploadSmallFile(store, path, fn, size);
  const hasher = await DIGEST_FUNCTIONS[fn].createHasher();
  let seen = 0;
  for await (const chunk of await readStreamNoFollow(path)) {
    hasher.update(chunk as Buffer);
    seen += (chunk as Buffer).length;
  }
  const digest: BlobDigest = { fn, hash: hasher.digest(), size: seen };
  if (seen !== size) throw new GrpcError(Status.FAILED_PRECONDITION, `output ${path} changed size while it was being read`);
  if (!(await store.has(digest))) {
    const source = await readStreamNoFollow(path);
    try {
      await store.write(digest, source);
    } finally {
      source.destroy(); // closes the file even if the store gave up early
    }
  }
  return digest;
}

async function uploadSmallFile(store: BlobStore, path: string, fn: DigestFunctionName, size: number): Promise<BlobDigest> {
  const bytes = await readSmallNoFollow(path, size);
  if (bytes.length !== size) throw new GrpcError(Status.FAILED_PRECONDITION, `output ${path} changed size while it was being read`);
  const hasher = await DIGEST_FUNCTIONS[fn].createHasher();
  hasher.update(bytes);
  const digest: BlobDigest = { fn, hash: hasher.digest(), size };
  if (!(await store.has(digest))) await store.writeAll(digest, bytes);
  return digest;
}

async function uploadMessage<T>(store: BlobStore, type: { encode(m: T): { finish(): Uint8Array } }, msg: T, fn: DigestFunctionName) {
  const bytes = encode(type as never, msg);
  const hasher = await DIGEST_FUNCTIONS[fn].createHasher();
  hasher.update(bytes);
  const digest: BlobDigest = { fn, hash: hasher.digest(), size: bytes.length };
  if (!(await store.has(digest))) await store.writeAll(digest, bytes);
  return { digest, bytes };
}

export async function collectOutputs(
  store: BlobStore,
  workDir: string,
  outputs: RequestedOutput[],
  fn: DigestFunctionName,
): Promise<CollectedOutputs> {
  const result: CollectedOutputs = { files: [], directories: [], symlinks: [], summary: [] };
  for (const o of outputs) {
    const abs = o.path === '' ? workDir : join(workDir, o.path);
    // Parents are walked without following symlinks, so an action cannot point an output outside the exec root.
    const st = await lstatNoFollow(workDir, o.path);
    if (!st) continue; // not produced (or behind a symlink): simply absent from the result
    if (st.isSymbolicLink()) {
      const target = await readTarget(abs, o.path);
      result.symlinks.push(reapi.OutputSymlink.create({ path: o.path, target }));
      result.summary.push({ path: o.path, bytes: 0, kind: 'symlink' });
    } else if (st.isFile()) {
      if (o.declared === 'directory') {
        throw new GrpcError(Status.FAILED_PRECONDITION, `output directory "${o.path}" is a regular file`);
      }
      const digest = await uploadFile(store, abs, fn, st.size);
      result.files.push(reapi.OutputFile.create({ path: o.path, digest: toWireDigest(digest), isExecutable: (st.mode & 0o111) !== 0 }));
      result.summary.push({ path: o.path, bytes: st.size, kind: 'file' });
    } else if (st.isDirectory()) {
      if (o.declared === 'file') throw new GrpcError(Status.FAILED_PRECONDITION, `output file "${o.path}" is a directory`);
      const tree = await buildTree(store, abs, fn, o.path);
      const { digest: treeDigest } = await uploadMessage(store, reapi.Tree, tree.tree, fn);
      result.directories.push(
        reapi.OutputDirectory.create({
          path: o.path,
          treeDigest: toWireDigest(treeDigest),
          rootDirectoryDigest: toWireDigest(tree.rootDigest),
          isTopologicallySorted: true,
        }),
      );
      result.summary.push({ path: o.path, bytes: tree.bytes, kind: 'directory' });
    }
  }
  return result;
}

interface BuiltTree {
  tree: reapi.Tree;
  rootDigest: BlobDigest;
  bytes: number;
}

/**
 * A Tree for an output directory: the root plus every distinct descendant, in
 * parent-before-child order. Each Directory is also stored on its own, so the
 * tree can be fetched with GetTree through root_directory_digest.
 */
export async function buildTree(store: BlobStore, dir: string, fn: DigestFunctionName, label = '.'): Promise<BuiltTree> {
  const byHash = new Map<string, reapi.Directory>();
  let bytes = 0;

  const visit = async (path: string): Promise<{ message: reapi.Directory; digest: BlobDigest }> => {
    // Names as bytes: what the action created is reported exactly, or refused when REAPI's strings cannot carry it.
    const names = (await readdir(path, { encoding: 'buffer' })).map((raw) => reportableName(raw, posix.join(label, posix.relative(dir, path))));
    names.sort(compareNames);
    const message = reapi.Directory.create();
    for (const name of names) {
      const abs = join(path, name);
      const st = await lstat(abs);
      if (st.isSymbolicLink()) {
        message.symlinks.push(reapi.SymlinkNode.create({ name, target: await readTarget(abs, name) }));
      } else if (st.isFile()) {
        const digest = await uploadFile(store, abs, fn, st.size);
        bytes += st.size;
        message.files.push(reapi.FileNode.create({ name, digest: toWireDigest(digest), isExecutable: (st.mode & 0o111) !== 0 }));
      } else if (st.isDirectory()) {
        const child = await visit(abs);
        message.directories.push(reapi.DirectoryNode.create({ name, digest: toWireDigest(child.digest) }));
      }
      // Sockets, devices and fifos are not outputs.
    }
    const { digest } = await uploadMessage(store, reapi.Directory, message, fn);
    byHash.set(digest.hash, message);
    return { message, digest };
  };

  const root = await visit(dir);
  // Children in parent-before-child order, each distinct Directory once.
  const children: reapi.Directory[] = [];
  const seen = new Set<string>([root.digest.hash]);
  const queue = [root.message];
  while (queue.length > 0) {
    for (const node of queue.shift()!.directories) {
      const hash = node.digest?.hash ?? '';
      if (seen.has(hash)) continue;
      seen.add(hash);
      const child = byHash.get(hash)!;
      children.push(child);
      queue.push(child);
    }
  }
  return { tree: reapi.Tree.create({ root: root.message, children }), rootDigest: root.digest, bytes };
}

/** The action made a name or symlink target that is not UTF-8: REAPI carries both as strings, so it cannot be reported. */
function notUtf8(what: string, bytes: Buffer): GrpcError {
  const shown = [...bytes].map((b) => (b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
  return new GrpcError(
    Status.FAILED_PRECONDITION,
    `the action created ${what} "${shown}" that is not valid UTF-8; REAPI names and symlink targets are UTF-8 strings, so it cannot be returned`,
  );
}

function reportableName(raw: Buffer, inDir: string): string {
  const name = utf8Name(raw);
  if (name === undefined) throw notUtf8(`a file name in output directory "${inDir}"`, raw);
  return name;
}

async function readTarget(path: string, shown: string): Promise<string> {
  const raw = await readlink(path, { encoding: 'buffer' });
  const target = utf8Name(raw);
  if (target === undefined) throw notUtf8(`a symlink ("${shown}") whose target`, raw);
  return target;
}
