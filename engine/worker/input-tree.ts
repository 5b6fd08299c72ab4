// Reads an action's input root from the CAS and checks it before anything
// touches the disk: every name a single safe path segment, children sorted
// and unique, symlinks relative and inside the root, every blob present. The
// result is a flat plan that staging can materialise without further checks.
import { posix } from 'node:path';
import { digestKey, isEmptyBlob, toBlobDigest, DigestError, DIGEST_FUNCTIONS, type BlobDigest, type DigestFunctionInfo } from '../digest';
import { invalidArgument, missingBlobs, resourceExhausted } from '../grpc/status';
import { reapi } from '../proto';
import { BlobNotFoundError, type BlobStore } from '../store/blob-store';
import { fileNameProblem, shownName } from './file-names';

export interface InputPlan {
  /** Every directory, parents before children, relative to the input root ('' is the root). */
  directories: string[];
  files: { path: string; digest: BlobDigest; executable: boolean }[];
  symlinks: { path: string; target: string }[];
  /** Every blob the tree references (files and Directory messages), for pinning. */
  blobs: BlobDigest[];
  totalBytes: number;
}

/** A tree this large is refused rather than staged. */
export const MAX_INPUT_NODES = 1_000_000;

/**
 * Longest path (in bytes) an input may have below the input root. Linux refuses
 * paths over 4096 bytes, and the exec root's own path comes in front.
 */
export const MAX_INPUT_PATH_BYTES = 3072;

export async function planInputTree(store: BlobStore, root: BlobDigest): Promise<InputPlan> {
  const fn = DIGEST_FUNCTIONS[root.fn];
  const directories = new Map<string, reapi.Directory>();
  const missing = new Map<string, BlobDigest>();

  // Fetch every distinct Directory message, level by level.
  let frontier = [root];
  while (frontier.length > 0) {
    const next: BlobDigest[] = [];
    await Promise.all(
      frontier.map(async (d) => {
        const key = digestKey(d);
        if (directories.has(key) || missing.has(key)) return;
        let bytes: Buffer;
        try {
          // The empty Directory encodes to no bytes at all: nothing to read (an action with no inputs, an empty folder).
          bytes = isEmptyBlob(d) ? Buffer.alloc(0) : await store.readAll(d);
        } catch (err) {
          if (!(err instanceof BlobNotFoundError)) throw err; // a store failure is not the client's fault
          missing.set(key, d);
          return;
        }
        let dir: reapi.Directory;
        try {
          dir = reapi.Directory.decode(bytes);
        } catch {
          throw invalidArgument(`input tree: blob ${d.hash}/${d.size} is not a valid Directory message`);
        }
        directories.set(key, dir);
        for (const child of dir.directories) next.push(inputDigest(child.digest, fn, `directory "${child.name}" digest`));
      }),
    );
    if (directories.size > MAX_INPUT_NODES) throw resourceExhausted(`the input tree has more than ${MAX_INPUT_NODES} directories`);
    // A directory shared by several parents is fetched once.
    frontier = [...new Map(next.map((d) => [digestKey(d), d])).values()];
  }

  const plan: InputPlan = { directories: [], files: [], symlinks: [], blobs: [], totalBytes: 0 };
  const fileDigests = new Map<string, BlobDigest>();
  let nodes = 0;

  const walk = (digest: BlobDigest, path: string) => {
    const dir = directories.get(digestKey(digest));
    if (!dir) return; // reported as missing
    checkPathLength(path);
    plan.directories.push(path);
    validateDirectory(dir, path);
    for (const f of dir.files) {
      const name = f.name ?? '';
      const d = inputDigest(f.digest, fn, `file "${join(path, name)}" digest`);
      plan.files.push({ path: checkPathLength(join(path, name)), digest: d, executable: !!f.isExecutable });
      plan.totalBytes += d.size;
      if (!isEmptyBlob(d)) fileDigests.set(digestKey(d), d);
    }
    for (const s of dir.symlinks) {
      const linkPath = checkPathLength(join(path, s.name ?? ''));
      const target = s.target ?? '';
      validateSymlinkTarget(linkPath, target);
      plan.symlinks.push({ path: linkPath, target });
    }
    for (const c of dir.directories) walk(inputDigest(c.digest, fn, `directory "${c.name}" digest`), join(path, c.name ?? ''));
    nodes += dir.files.length + dir.directories.length + dir.symlinks.length;
    if (nodes > MAX_INPUT_NODES) throw resourceExhausted(`the input tree has more than ${MAX_INPUT_NODES} entries`);
  };
  walk(root, '');
  checkSymlinksResolveInside(plan);

  for (const d of await store.findMissing([...fileDigests.values()])) missing.set(digestKey(d), d);
  if (missing.size > 0) throw missingBlobs([...missing.values()], 'input');

  plan.blobs = [...fileDigests.values(), ...[...directories.keys()].map((k) => parseKey(k))];
  return plan;
}

/** A digest from the input tree; a malformed one is the client's error (INVALID_ARGUMENT), not ours. */
export function inputDigest(d: reapi.Digest.$Properties | null | undefined, fn: DigestFunctionInfo, field: string): BlobDigest {
  try {
    return toBlobDigest(d, fn, field);
  } catch (err) {
    if (err instanceof DigestError) throw invalidArgument(`input tree: ${err.message}`);
    throw err;
  }
}

/** Linux gives up (ELOOP) after this many symlinks in one path resolution; so do we. */
const MAX_SYMLINK_HOPS = 40;

/**
 * The lexical check in validateSymlinkTarget is not enough on its own: a
 * target can pass through other symlinks of the tree ("s" -> ".", then
 * "q" -> "s/s/x/../../..") and end up above the root although it looks
 * inside. Resolve every target through the tree the way the kernel would and
 * refuse any that climbs above the root.
 */
export function checkSymlinksResolveInside(plan: Pick<InputPlan, 'directories' | 'symlinks'>): void {
  const dirs = new Set(plan.directories);
  const links = new Map(plan.symlinks.map((l) => [l.path, l.target]));
  const segments = (p: string) => p.split('/').filter((s) => s !== '' && s !== '.');
  for (const { path, target } of plan.symlinks) {
    const cwd = segments(posix.dirname(path));
    const pending = segments(target);
    let hops = 0;
    while (pending.length > 0) {
      const seg = pending.shift()!;
      if (seg === '..') {
        if (cwd.length === 0) {
          throw invalidArgument(`input tree: symlink "${path}" -> "${target}" resolves outside the input root (through other symlinks)`);
        }
        cwd.pop();
        continue;
      }
      const here = [...cwd, seg].join('/');
      const next = links.get(here);
      if (next !== undefined) {
        if (++hops > MAX_SYMLINK_HOPS) break; // the kernel answers ELOOP: it cannot escape either
        pending.unshift(...segments(next));
        continue;
      }
      // A file or nothing: resolving further fails (ENOTDIR/ENOENT) without leaving the root.
      if (!dirs.has(here)) break;
      cwd.push(seg);
    }
  }
}

/** Bounds nesting too, so a hostile chain of directories cannot exhaust the stack. */
function checkPathLength(path: string): string {
  if (Buffer.byteLength(path) > MAX_INPUT_PATH_BYTES) {
    throw invalidArgument(`input tree: "${path.slice(0, 60)}…" is too long or nested too deeply (paths may be at most ${MAX_INPUT_PATH_BYTES} bytes)`);
  }
  return path;
}

function join(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

function parseKey(key: string): BlobDigest {
  const [fn, hash, size] = key.split('/');
  return { fn: fn as BlobDigest['fn'], hash, size: Number(size) };
}

/** Byte-wise (UTF-8) order, as the spec sorts names. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function validateName(name: string, where: string): void {
  const problem = fileNameProblem(name);
  if (problem) throw invalidArgument(`input tree: ${where}: the name ${shownName(name)} ${problem}`);
}

function validateDirectory(dir: reapi.Directory, path: string): void {
  const where = path ? `directory "${path}"` : 'the input root';
  const seen = new Set<string>();
  for (const [kind, list] of [
    ['files', dir.files],
    ['directories', dir.directories],
    ['symlinks', dir.symlinks],
  ] as const) {
    let previous: string | undefined;
    for (const node of list as { name: string }[]) {
      validateName(node.name, where);
      if (previous !== undefined && compareNames(previous, node.name) >= 0) {
        throw invalidArgument(`input tree: ${where}: ${kind} are not sorted by name or repeat a name ("${previous}", "${node.name}")`);
      }
      if (seen.has(node.name)) throw invalidArgument(`input tree: ${where}: the name "${node.name}" appears twice`);
      seen.add(node.name);
      previous = node.name;
    }
  }
}

/** PATH_MAX less its NUL: the longest symlink target Linux stores. */
const MAX_SYMLINK_TARGET_BYTES = 4095;

/** Symlinks must be relative and resolve inside the input root (we advertise DISALLOWED for absolute ones). */
export function validateSymlinkTarget(linkPath: string, target: string): void {
  if (!target || target.includes('\0')) throw invalidArgument(`input tree: symlink "${linkPath}" has an empty or invalid target`);
  if (Buffer.byteLength(target) > MAX_SYMLINK_TARGET_BYTES) {
    throw invalidArgument(`input tree: symlink "${linkPath}" has a target of ${Buffer.byteLength(target)} bytes; Linux takes at most ${MAX_SYMLINK_TARGET_BYTES}`);
  }
  if (target.startsWith('/')) {
    throw invalidArgument(`input tree: symlink "${linkPath}" points to the absolute path "${target}"; only relative targets inside the input root are allowed`);
  }
  const resolved = posix.normalize(posix.join(posix.dirname(linkPath), target));
  if (resolved === '..' || resolved.startsWith('../')) {
    throw invalidArgument(`input tree: symlink "${linkPath}" -> "${target}" points outside the input root`);
  }
}
