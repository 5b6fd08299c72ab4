// What an archive reader hands over, whatever the format: one entry at a time,
// in archive order, with its body as a stream read before the next entry comes.
// Readers know formats; they know nothing of the CAS, paths' safety or limits.

export type ArchiveEntryKind = 'file' | 'directory' | 'symlink' | 'hardlink';

export interface ArchiveEntry {
  /** The name as the archive spells it ("./a/b", "a/b/", ...); checked and normalised by the caller. */
  path: string;
  kind: ArchiveEntryKind;
  /** Permission bits (0 when the archive records none). */
  mode: number;
  /** Bytes of a file's body (0 for other kinds). */
  size: number;
  /** A symlink's target, or the archive path a hard link repeats. */
  linkTarget?: string;
  /** A file's body; read it to the end (or not at all) before the visit resolves. */
  body?: AsyncIterable<Buffer>;
}

/** Calls `visit` for each entry in order, waiting for each; rejects with ArchiveError for a damaged archive. */
export type ArchiveReader = (file: string, visit: (entry: ArchiveEntry) => Promise<void>) => Promise<void>;

/** Why an archive cannot be unpacked: `invalid` (damaged, unsafe, unsupported) or `too-large` (over a bound). */
export class ArchiveError extends Error {
  constructor(
    readonly kind: 'invalid' | 'too-large',
    message: string,
  ) {
    super(message);
  }
}
