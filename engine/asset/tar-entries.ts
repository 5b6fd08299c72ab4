// Reads a tar archive, plain or gzip-compressed (node-tar tells them apart by
// their first bytes), as a sequence of ArchiveEntry. Strict: a damaged header,
// a cut archive or something that is not a tar at all is an ArchiveError. The
// parser waits while an entry's body is being read, so memory stays at a chunk.
import { createReadStream } from 'node:fs';
import { Parser, type ReadEntry } from 'tar';
import { ArchiveError, type ArchiveEntryKind, type ArchiveReader } from './archive-entry';

/** Tar entry types Kiln keeps; devices, fifos and the like are skipped, as outputs skip them. */
const KINDS: Partial<Record<ReadEntry['type'], ArchiveEntryKind>> = {
  File: 'file',
  OldFile: 'file',
  ContiguousFile: 'file',
  Directory: 'directory',
  SymbolicLink: 'symlink',
  Link: 'hardlink',
};

export const readTarEntries: ArchiveReader = (file, visit) =>
  new Promise<void>((resolve, reject) => {
    const source = createReadStream(file);
    const parser = new Parser({ strict: true });
    let chain = Promise.resolve();
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      source.destroy();
      reject(err instanceof ArchiveError ? err : new ArchiveError('invalid', `not a readable tar archive: ${(err as Error).message ?? String(err)}`));
    };
    parser.on('entry', (entry: ReadEntry) => {
      chain = chain
        .then(async () => {
          const kind = KINDS[entry.type];
          if (failed || !kind) return;
          await visit({
            path: entry.path,
            kind,
            mode: entry.mode ?? 0,
            size: kind === 'file' ? entry.size : 0,
            linkTarget: entry.linkpath,
            body: kind === 'file' ? (entry as AsyncIterable<Buffer>) : undefined,
          });
        })
        .catch(fail)
        .finally(() => entry.resume()); // Whatever was not read is skipped, so the parser moves on.
    });
    parser.on('error', fail);
    parser.on('end', () => void chain.then(() => failed || resolve()));
    source.on('error', fail);
    source.pipe(parser as unknown as NodeJS.WritableStream);
  });
