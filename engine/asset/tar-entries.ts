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

/** Entries waiting for their visit before reading stops. */
const MAX_PENDING = 64;

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
    // Entries without a body end at once, so the parser would run ahead of the visits and queue
    // them all (a few hundred bytes each, millions in a big archive): stop reading while many wait.
    let pending = 0;
    let paused = false;
    parser.on('entry', (entry: ReadEntry) => {
      if (++pending >= MAX_PENDING && !paused) {
        paused = true;
        source.unpipe(parser as unknown as NodeJS.WritableStream);
      }
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
        .finally(() => {
          entry.resume(); // Whatever was not read is skipped, so the parser moves on.
          if (--pending < MAX_PENDING / 2 && paused && !failed) {
            paused = false;
            source.pipe(parser as unknown as NodeJS.WritableStream);
          }
        });
    });
    parser.on('error', fail);
    parser.on('end', () => void chain.then(() => failed || resolve()));
    source.on('error', fail);
    source.pipe(parser as unknown as NodeJS.WritableStream);
  });
