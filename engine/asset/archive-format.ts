// Which kind of archive a download is: the request's qualifiers say so when
// present ("archive.type", or the MIME type in "resource_type"); otherwise the
// first bytes do, and the URL's suffix as a last resort.
import { open } from 'node:fs/promises';
import { ArchiveError } from './archive-entry';

/** tar covers gzip-compressed tar too: the tar reader recognises gzip by its magic bytes. */
export type ArchiveFormat = 'tar' | 'zip';

const BY_NAME: Record<string, ArchiveFormat> = {
  tar: 'tar',
  'tar.gz': 'tar',
  tgz: 'tar',
  zip: 'zip',
  'application/x-tar': 'tar',
  'application/gzip': 'tar',
  'application/x-gzip': 'tar',
  'application/x-gtar': 'tar',
  'application/x-compressed-tar': 'tar',
  'application/zip': 'zip',
  'application/x-zip-compressed': 'zip',
};

const SUPPORTED = 'tar, tar.gz (tgz) and zip';

/** The format a qualifier value names; ArchiveError when it names one Kiln cannot unpack. */
export function formatFromQualifier(name: string, value: string): ArchiveFormat {
  const format = BY_NAME[value.trim().toLowerCase()];
  if (!format) throw new ArchiveError('invalid', `${name} "${value}" is not an archive type Kiln unpacks (${SUPPORTED})`);
  return format;
}

/** The format of the downloaded file at `path`, by magic bytes, then by `uri`'s suffix. */
export async function sniffFormat(path: string, uri: string): Promise<ArchiveFormat> {
  const head = Buffer.alloc(512);
  const fh = await open(path, 'r');
  let length = 0;
  try {
    ({ bytesRead: length } = await fh.read(head, 0, head.length, 0));
  } finally {
    await fh.close();
  }
  if (length >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip'; // "PK\3\4"
  if (length >= 4 && head.readUInt32LE(0) === 0x06054b50) return 'zip'; // an empty zip
  if (length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar'; // gzip: tar.gz
  if (length >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'tar';
  const path_ = safePathname(uri).toLowerCase();
  if (path_.endsWith('.zip')) return 'zip';
  if (/\.(tar|tar\.gz|tgz)$/.test(path_)) return 'tar';
  throw new ArchiveError('invalid', `cannot tell what kind of archive ${uri} is; Kiln unpacks ${SUPPORTED} (say which with the archive.type qualifier)`);
}

function safePathname(uri: string): string {
  try {
    return new URL(uri).pathname;
  } catch {
    return uri;
  }
}
