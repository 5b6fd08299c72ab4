// Digest functions and digests. The function is a value that travels with every
// digest (BlobDigest.fn), so a second function is a registry entry, not a rewrite.
import { createHash } from 'node:crypto';
import { createBLAKE3, type IHasher } from 'hash-wasm';
import { reapi } from './proto';

export type DigestFunctionName = 'sha256' | 'blake3';

/** Incremental hasher; `digest()` returns lower-case hex. */
export interface Hasher {
  update(chunk: Uint8Array): void;
  digest(): string;
}

export interface DigestFunctionInfo {
  name: DigestFunctionName;
  /** The REAPI enum value. */
  value: reapi.DigestFunction.Value;
  /** Hex characters in a hash. */
  hexLength: number;
  /** Hash of the empty blob: always present in the CAS. */
  emptyHash: string;
  createHasher(): Promise<Hasher>;
}

let blake3Template: Promise<IHasher> | undefined;

export const DIGEST_FUNCTIONS: Record<DigestFunctionName, DigestFunctionInfo> = {
  sha256: {
    name: 'sha256',
    value: reapi.DigestFunction.Value.SHA256,
    hexLength: 64,
    emptyHash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    async createHasher() {
      const h = createHash('sha256');
      return { update: (c) => void h.update(c), digest: () => h.digest('hex') };
    },
  },
  blake3: {
    name: 'blake3',
    value: reapi.DigestFunction.Value.BLAKE3,
    hexLength: 64,
    emptyHash: 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262',
    async createHasher() {
      // hash-wasm instances are cheap to create but the wasm compile is not: keep one around.
      blake3Template ??= createBLAKE3();
      await blake3Template;
      const h = await createBLAKE3();
      h.init();
      return { update: (c) => void h.update(c), digest: () => h.digest('hex') };
    },
  },
};

/** Functions Kiln advertises, first is the default. */
export const SUPPORTED_DIGEST_FUNCTIONS: DigestFunctionName[] = ['sha256', 'blake3'];

export interface BlobDigest {
  fn: DigestFunctionName;
  hash: string;
  size: number;
}

export class DigestError extends Error {}

/** 1 for the characters of lower-case hex, by char code. */
const HEX_CHAR = new Uint8Array(128);
for (const c of '0123456789abcdef') HEX_CHAR[c.charCodeAt(0)] = 1;

/** Lower-case hex only. A table lookup per character: FindMissingBlobs checks 10,000 hashes a call, and a regex costs twice as much. */
function isLowerHex(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || HEX_CHAR[c] === 0) return false;
  }
  return s.length > 0;
}

/** The digest function named by a REAPI enum value (UNKNOWN → inferred from hash length). */
export function digestFunctionFromEnum(
  value: reapi.DigestFunction.Value | null | undefined,
  hashForInference?: string,
): DigestFunctionInfo {
  if (!value) {
    // Clients may leave it unset for SHA-256-family functions: infer from the length.
    if (hashForInference === undefined || hashForInference.length === 64) return DIGEST_FUNCTIONS.sha256;
    throw new DigestError(
      `cannot infer the digest function from a ${hashForInference.length}-character hash; Kiln supports sha256 (64 hex characters) and blake3 (set digest_function)`,
    );
  }
  for (const info of Object.values(DIGEST_FUNCTIONS)) if (info.value === value) return info;
  throw new DigestError(
    `digest function ${reapi.DigestFunction.Value[value] ?? value} is not supported; Kiln supports ${SUPPORTED_DIGEST_FUNCTIONS.join(', ')}`,
  );
}

export function digestFunctionByName(name: string): DigestFunctionInfo | undefined {
  return (DIGEST_FUNCTIONS as Record<string, DigestFunctionInfo | undefined>)[name];
}

/** Validates a wire digest and returns it with its function. Throws DigestError with a readable reason. */
export function toBlobDigest(
  d: reapi.Digest.$Properties | null | undefined,
  fn: DigestFunctionInfo,
  field = 'digest',
): BlobDigest {
  if (!d) throw new DigestError(`${field} is missing`);
  const hash = d.hash ?? '';
  const size = Number(d.sizeBytes ?? 0);
  validateHashAndSize(hash, size, fn, field);
  return { fn: fn.name, hash, size };
}

export function validateHashAndSize(hash: string, size: number, fn: DigestFunctionInfo, field = 'digest'): void {
  if (hash.length !== fn.hexLength || !isLowerHex(hash)) {
    throw new DigestError(
      `${field}: hash "${truncate(hash)}" is not a ${fn.name} digest (expected ${fn.hexLength} lower-case hex characters)`,
    );
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new DigestError(`${field}: size_bytes ${size} is not a non-negative integer`);
  }
}

export function toWireDigest(d: BlobDigest): reapi.Digest {
  return reapi.Digest.create({ hash: d.hash, sizeBytes: d.size });
}

export function isEmptyBlob(d: BlobDigest): boolean {
  return d.size === 0 && d.hash === DIGEST_FUNCTIONS[d.fn].emptyHash;
}

export function emptyDigest(fn: DigestFunctionName = 'sha256'): BlobDigest {
  return { fn, hash: DIGEST_FUNCTIONS[fn].emptyHash, size: 0 };
}

/** A stable key for maps and file names: "sha256/abc…/123". */
export function digestKey(d: BlobDigest): string {
  return `${d.fn}/${d.hash}/${d.size}`;
}

export function formatDigest(d: BlobDigest): string {
  return `${d.hash}/${d.size}`;
}

export async function digestOf(data: Uint8Array, fn: DigestFunctionName = 'sha256'): Promise<BlobDigest> {
  const h = await DIGEST_FUNCTIONS[fn].createHasher();
  h.update(data);
  return { fn, hash: h.digest(), size: data.byteLength };
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
