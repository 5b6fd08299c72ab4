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

/**
 * How large an input tree may be once expanded. Directory messages may reuse each
 * other, so a few KB of messages can describe millions of paths: these bounds are
 * checked on the expanded sizes, computed from the distinct messages alone, before
 * a single path is planned or staged.
 */
export interface InputTreeLimits {
  /** Files and symlinks, counting every place a shared directory appears. */
  maxFiles: number;
  /** Directories, the root included, counted the same way. */
  maxDirectories: number;
  /** Sum of the sizes of every staged file. */
  maxBytes: number;
  /** Levels of nesting below the input root. */
  maxDepth: number;
}

export const DEFAULT_INPUT_TREE_LIMITS: Readonly<InputTreeLimits> = {
  maxFiles: 250_000,
  maxDirectories: 100_000,
  maxBytes: 64 * 1024 ** 3,
  maxDepth: 256,
};

/**
 * Longest path (in bytes) an input may have below the input root. Linux refuses
 * paths over 4096 bytes, and the exec root's own path comes in front.
 */
export const MAX_INPUT_PATH_BYTES = 3072;

/** Entries planned between two yields to the event loop, so other calls are served meanwhile. */
const ENTRIES_PER_YIELD = 2_000;

export async function planInputTree(
  store: BlobStore,
  root: BlobDigest,
  limits: InputTreeLimits = DEFAULT_INPUT_TREE_LIMITS,
): Promise<InputPlan> {
  const fn = DIGEST_FUNCTIONS[root.fn];
  const directories = new Map<string, reapi.Directory>();
  const missing = new Map<string, BlobDigest>();

  // Fetch every distinct Directory message, level by level.
  let frontier = [root];
  for (let depth = 0; frontier.length > 0; depth++) {
    if (depth > limits.maxDepth) {
      throw invalidArgument(`input tree: directories are nested too deeply (more than ${limits.maxDepth} levels)`);
    }
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
    if (directories.size > limits.maxDirectories) {
      throw tooLarge(`more than ${limits.maxDirectories} distinct directories`, limits);
    }
    // A directory shared by several parents is fetched once.
    frontier = [...new Map(next.map((d) => [digestKey(d), d])).values()];
  }

  checkExpandedSize(root, directories, fn, limits);

  const plan: InputPlan = { directories: [], files: [], symlinks: [], blobs: [], totalBytes: 0 };
  const fileDigests = new Map<string, BlobDigest>();
  let sinceYield = 0;

  // Depth first, parents before children, children in the order the message lists them.
  const stack: { digest: BlobDigest; path: string }[] = [{ digest: root, path: '' }];
  while (stack.length > 0) {
    const { digest, path } = stack.pop()!;
    const dir = directories.get(digestKey(digest));
    if (!dir) continue; // reported as missing
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
    for (let i = dir.directories.length - 1; i >= 0; i--) {
      const c = dir.directories[i]!;
      stack.push({ digest: inputDigest(c.digest, fn, `directory "${c.name}" digest`), path: join(path, c.name ?? '') });
    }
    sinceYield += 1 + dir.files.length + dir.symlinks.length;
    if (sinceYield >= ENTRIES_PER_YIELD) {
      sinceYield = 0;
      await yieldToEventLoop();
    }
  }
  checkSymlinksResolveInside(plan);

  for (const d of await store.findMissing([...fileDigests.values()])) missing.set(digestKey(d), d);
  if (missing.size > 0) throw missingBlobs([...missing.values()], 'input');

  plan.blobs = [...fileDigests.values(), ...[...directories.keys()].map((k) => parseKey(k))];
  return plan;
}

/** Expanded totals of one directory: itself and everything below it, every shared subtree counted where it appears. */
interface Expanded {
  files: number;
  directories: number;
  bytes: number;
  /** Levels below this directory (0: no subdirectories). */
  height: number;
}

/**
 * Adds up what the tree expands to, once per distinct Directory message (memoised),
 * and refuses it when any total is over its limit. Totals saturate just past the
 * limit, so a tree describing 2^100 files cannot overflow the arithmetic.
 */
function checkExpandedSize(root: BlobDigest, directories: Map<string, reapi.Directory>, fn: DigestFunctionInfo, limits: InputTreeLimits): void {
  const memo = new Map<string, Expanded>();
  const cap = (n: number, limit: number) => Math.min(n, limit + 1);
  const expand = (key: string, level: number): Expanded => {
    // A shared directory can sit deeper than where the level-by-level fetch first met it.
    const known = memo.get(key);
    if (level + (known?.height ?? 0) > limits.maxDepth) {
      throw invalidArgument(`input tree: directories are nested too deeply (more than ${limits.maxDepth} levels)`);
    }
    if (known) return known;
    const dir = directories.get(key);
    const total: Expanded = { files: 0, directories: 1, bytes: 0, height: 0 };
    if (dir) {
      total.files = dir.files.length + dir.symlinks.length;
      for (const f of dir.files) total.bytes = cap(total.bytes + inputDigest(f.digest, fn, `file "${f.name}" digest`).size, limits.maxBytes);
      for (const c of dir.directories) {
        const sub = expand(digestKey(inputDigest(c.digest, fn, `directory "${c.name}" digest`)), level + 1);
        total.files = cap(total.files + sub.files, limits.maxFiles);
        total.directories = cap(total.directories + sub.directories, limits.maxDirectories);
        total.bytes = cap(total.bytes + sub.bytes, limits.maxBytes);
        total.height = Math.max(total.height, sub.height + 1);
      }
    }
    memo.set(key, total);
    return total;
  };
  const total = expand(digestKey(root), 0);
  if (total.files > limits.maxFiles) throw tooLarge(`more than ${limits.maxFiles} files and symlinks once expanded`, limits);
  if (total.directories > limits.maxDirectories) throw tooLarge(`more than ${limits.maxDirectories} directories once expanded`, limits);
  if (total.bytes > limits.maxBytes) throw tooLarge(`more than ${limits.maxBytes} bytes of files once expanded`, limits);
}

function tooLarge(what: string, limits: InputTreeLimits) {
  return resourceExhausted(
    `input tree: the input root has ${what} (Kiln stages at most ${limits.maxFiles} files, ${limits.maxDirectories} directories, ` +
      `${limits.maxBytes} bytes and ${limits.maxDepth} levels per action); split the action's inputs`,
  );
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
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
