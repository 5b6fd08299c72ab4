// The qualifiers Kiln understands on Remote Asset requests, checked once:
// "checksum.sri" (what Bazel sends for an http_archive's sha256), and a few that
// only narrow the cache key or that we may safely ignore. Anything else is an
// error the client can act on, as the spec asks.
import type { DigestFunctionInfo } from '../digest';

/** A request's qualifiers, understood. */
export interface AssetQualifiers {
  /** Lower-case hex SHA-256 from "checksum.sri", when given. */
  sha256?: string;
  /** The qualifiers that distinguish content at one URI, as a stable string for the URI index. */
  cacheKey: string;
  /** "resource_type": the MIME type of the content, when given. */
  resourceType?: string;
  /** "archive.type" (tar, tar.gz, tgz, zip): how FetchDirectory unpacks, when given. */
  archiveType?: string;
  /** "directory": the subfolder of an archive that FetchDirectory answers (its strip prefix); "" for all. */
  directory: string;
}

/** A qualifier the client sent that Kiln cannot honour. */
export class QualifierError extends Error {
  constructor(
    message: string,
    /** The field a BadRequest violation names. */
    readonly field: string,
  ) {
    super(message);
  }
}

/** Part of the URI index key: content at one URI may differ by these. */
const KEYED = new Set(['resource_type', 'bazel.canonical_id', 'archive.type', 'directory']);
/** Carried by Bazel but irrelevant to which bytes a URL holds (Kiln never forwards credentials). */
const IGNORED = new Set(['bazel.auth_headers']);
const IGNORED_PREFIXES = ['http_header:', 'http_header_url:'];

export function parseQualifiers(qualifiers: { name?: string | null; value?: string | null }[], fn: DigestFunctionInfo): AssetQualifiers {
  const seen = new Set<string>();
  const keyed: string[] = [];
  let sha256: string | undefined;
  const named = new Map<string, string>();
  for (const q of qualifiers) {
    const name = q.name ?? '';
    const value = q.value ?? '';
    if (seen.has(name)) throw new QualifierError(`qualifier "${name}" appears twice; names must be unique`, 'qualifiers.name');
    seen.add(name);
    if (name === 'checksum.sri') {
      sha256 = sriToSha256(value);
      if (fn.name !== 'sha256') {
        throw new QualifierError(`checksum.sri is a SHA-256 checksum, but digest_function asks for ${fn.name}; use SHA256`, 'digest_function');
      }
    } else if (KEYED.has(name)) {
      keyed.push(`${name}=${value}`);
      named.set(name, value);
    } else if (!IGNORED.has(name) && !IGNORED_PREFIXES.some((p) => name.startsWith(p))) {
      throw new QualifierError(`"${name}" not supported (Kiln understands checksum.sri, resource_type, bazel.canonical_id, archive.type and directory)`, 'qualifiers.name');
    }
  }
  return {
    sha256,
    cacheKey: keyed.sort().join('\n'),
    resourceType: named.get('resource_type'),
    archiveType: named.get('archive.type'),
    directory: named.get('directory') ?? '',
  };
}

/**
 * The SHA-256 in a Subresource Integrity string ("sha256-<base64>"). Several hash
 * expressions may be listed (space-separated); the SHA-256 one is used.
 */
export function sriToSha256(sri: string): string {
  const expressions = sri.trim().split(/\s+/).filter(Boolean);
  const sha = expressions.find((e) => e.startsWith('sha256-'));
  if (!sha) {
    const algos = expressions.map((e) => e.split('-')[0]).join(', ') || 'none';
    throw new QualifierError(`checksum.sri "${sri}" has no sha256 expression (found: ${algos}); Kiln verifies SHA-256`, 'qualifiers.value');
  }
  const base64 = sha.slice('sha256-'.length).split('?')[0]!; // SRI options after "?" carry nothing we need.
  // 32 bytes are 43 base64 characters and one "=" of padding (which some writers drop).
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=?$/.test(base64)) {
    throw new QualifierError(`checksum.sri "${sri}" is not a base64 SHA-256 (32 bytes)`, 'qualifiers.value');
  }
  return Buffer.from(base64, 'base64').toString('hex');
}

/** The SRI form of a SHA-256 hex digest, as Bazel writes it. */
export function sha256ToSri(hex: string): string {
  return `sha256-${Buffer.from(hex, 'hex').toString('base64')}`;
}
