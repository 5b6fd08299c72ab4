// Reads a zip archive as a sequence of ArchiveEntry, from its central directory
// (the authoritative list; local headers only say where each body starts).
// Bodies are stored or deflated (node's zlib); each is checked against its
// recorded size and CRC-32 while it streams. Zip64 sizes and offsets are read;
// encrypted entries, other compression methods and split archives are refused.
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createInflateRaw, crc32 } from 'node:zlib';
import { ArchiveError, type ArchiveReader } from './archive-entry';

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
/** A central directory larger than this is not one Kiln would unpack anyway. */
const MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024;
const MAX_SYMLINK_TARGET = 4096;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;

interface CentralEntry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
  mode: number;
  isDirectory: boolean;
}

export const readZipEntries: ArchiveReader = async (file, visit) => {
  const fh = await open(file, 'r');
  let entries: CentralEntry[];
  try {
    entries = await readCentralDirectory(fh);
    for (const e of entries) {
      if (e.flags & 0x1) throw invalid(`entry "${e.name}" is encrypted; Kiln unpacks only unencrypted zips`);
      if (e.method !== 0 && e.method !== 8) throw invalid(`entry "${e.name}" uses compression method ${e.method}; Kiln reads stored (0) and deflated (8) entries`);
    }
    for (const e of entries) {
      const dataStart = await bodyOffset(fh, e);
      if (e.isDirectory) {
        await visit({ path: e.name, kind: 'directory', mode: e.mode, size: 0 });
      } else if ((e.mode & S_IFMT) === S_IFLNK) {
        if (e.size > MAX_SYMLINK_TARGET) throw invalid(`symlink "${e.name}" has a ${e.size}-byte target`);
        const chunks: Buffer[] = [];
        for await (const chunk of body(file, e, dataStart)) chunks.push(chunk);
        await visit({ path: e.name, kind: 'symlink', mode: e.mode, size: 0, linkTarget: Buffer.concat(chunks).toString('utf8') });
      } else {
        await visit({ path: e.name, kind: 'file', mode: e.mode, size: e.size, body: body(file, e, dataStart) });
      }
    }
  } finally {
    await fh.close();
  }
};

function invalid(message: string): ArchiveError {
  return new ArchiveError('invalid', `not a readable zip archive: ${message}`);
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  if (bytesRead !== length) throw invalid('it ends early');
  return buf;
}

async function readCentralDirectory(fh: FileHandle): Promise<CentralEntry[]> {
  const { size: fileSize } = await fh.stat();
  // The end record is 22 bytes plus a comment of at most 64 KiB, at the very end.
  const tailLength = Math.min(fileSize, 22 + 0xffff);
  const tail = await readAt(fh, fileSize - tailLength, tailLength);
  let at = -1;
  for (let i = tailLength - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD) {
      at = i;
      break;
    }
  }
  if (at < 0) throw invalid('no end of central directory record');
  if (tail.readUInt16LE(at + 4) !== 0 || tail.readUInt16LE(at + 6) !== 0) throw invalid('it is split over several disks');
  let count = tail.readUInt16LE(at + 10);
  let cdSize = tail.readUInt32LE(at + 12);
  let cdOffset = tail.readUInt32LE(at + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const eocdPosition = fileSize - tailLength + at;
    if (eocdPosition < 20) throw invalid('a zip64 end record is missing');
    const locator = await readAt(fh, eocdPosition - 20, 20);
    if (locator.readUInt32LE(0) !== ZIP64_LOCATOR) throw invalid('a zip64 end record locator is missing');
    const record = await readAt(fh, safeNumber(locator.readBigUInt64LE(8)), 56);
    if (record.readUInt32LE(0) !== ZIP64_EOCD) throw invalid('the zip64 end record is damaged');
    count = safeNumber(record.readBigUInt64LE(32));
    cdSize = safeNumber(record.readBigUInt64LE(40));
    cdOffset = safeNumber(record.readBigUInt64LE(48));
  }
  if (cdSize > MAX_CENTRAL_DIRECTORY) throw new ArchiveError('too-large', `the zip's central directory is ${cdSize} bytes, over Kiln's ${MAX_CENTRAL_DIRECTORY}`);
  if (cdOffset + cdSize > fileSize) throw invalid('the central directory lies beyond the end of the file');
  const cd = await readAt(fh, cdOffset, cdSize);
  const entries: CentralEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) throw invalid(`central directory entry ${i} is damaged`);
    const madeBy = cd.readUInt16LE(p + 4) >> 8;
    const flags = cd.readUInt16LE(p + 8);
    const nameLength = cd.readUInt16LE(p + 28);
    const extraLength = cd.readUInt16LE(p + 30);
    const commentLength = cd.readUInt16LE(p + 32);
    const external = cd.readUInt32LE(p + 38);
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLength);
    const name = nameBytes.toString(flags & 0x800 ? 'utf8' : 'latin1');
    let size = cd.readUInt32LE(p + 24);
    let compressedSize = cd.readUInt32LE(p + 20);
    let localOffset = cd.readUInt32LE(p + 42);
    // Zip64: the fields that overflowed are in extra block 0x0001, in this order.
    const extra = cd.subarray(p + 46 + nameLength, p + 46 + nameLength + extraLength);
    for (let x = 0; x + 4 <= extra.length; ) {
      const id = extra.readUInt16LE(x);
      const len = extra.readUInt16LE(x + 2);
      if (id === 0x0001) {
        let q = x + 4;
        const next = () => {
          if (q + 8 > x + 4 + len) throw invalid(`entry "${name}" has a short zip64 field`);
          const v = safeNumber(extra.readBigUInt64LE(q));
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localOffset === 0xffffffff) localOffset = next();
      }
      x += 4 + len;
    }
    // Unix (3) and macOS (19) writers keep st_mode in the high half of the external attributes.
    const mode = madeBy === 3 || madeBy === 19 ? external >>> 16 : 0;
    const isDirectory = name.endsWith('/') || (mode & S_IFMT) === S_IFDIR || (mode === 0 && (external & 0x10) !== 0);
    entries.push({ name, method: cd.readUInt16LE(p + 10), flags, crc: cd.readUInt32LE(p + 16), compressedSize, size, localOffset, mode, isDirectory });
    p += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

function safeNumber(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid('a zip64 size or offset is out of range');
  return Number(v);
}

/** Where an entry's bytes start: after its local header, whose name and extra lengths may differ from the central copy. */
async function bodyOffset(fh: FileHandle, e: CentralEntry): Promise<number> {
  const local = await readAt(fh, e.localOffset, 30);
  if (local.readUInt32LE(0) !== LOCAL) throw invalid(`the local header of "${e.name}" is damaged`);
  return e.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
}

/** An entry's uncompressed bytes, checked against the recorded size and CRC-32 as they stream. */
async function* body(file: string, e: CentralEntry, start: number): AsyncGenerator<Buffer> {
  if (e.compressedSize === 0) {
    if (e.size !== 0) throw invalid(`entry "${e.name}" has no data for its ${e.size} bytes`);
    return;
  }
  const raw = createReadStream(file, { start, end: start + e.compressedSize - 1 });
  const source = e.method === 8 ? raw.pipe(createInflateRaw()) : raw;
  let seen = 0;
  let crc = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      seen += chunk.length;
      if (seen > e.size) throw invalid(`entry "${e.name}" unpacks to more than its recorded ${e.size} bytes`);
      crc = crc32(chunk, crc);
      yield chunk;
    }
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    throw invalid(`entry "${e.name}" cannot be inflated: ${(err as Error).message}`);
  } finally {
    raw.destroy();
    if (source !== raw) source.destroy();
  }
  if (seen !== e.size) throw invalid(`entry "${e.name}" unpacks to ${seen} bytes, not its recorded ${e.size}`);
  if (crc !== e.crc) throw invalid(`entry "${e.name}" fails its CRC-32 check`);
}
