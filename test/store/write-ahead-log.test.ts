// The write-ahead log under the stores' small writes: records survive as written,
// a torn or damaged tail is cut off at replay, concurrent appends share a sync, and
// LoggedFiles puts back after a crash what it acknowledged (and nothing it removed).
import { constants } from 'node:fs';
import { appendFile, link, mkdir, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LoggedFiles } from '../../engine/store/logged-files';
import { WriteAheadLog, decodeSegment, encodeRecord, readSegments, type WalRecord } from '../../engine/store/write-ahead-log';
import { tempDir } from './helpers';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir('kiln-wal-')));
afterEach(async () => cleanup());

const records: WalRecord[] = [
  { path: 'sha256/ab/one', data: Buffer.from('first record') },
  { path: 'sha256/cd/two', data: Buffer.alloc(3000, 7) },
  { path: 'sha256/ab/one', data: undefined },
  { path: 'instances/x~1/sha256/ef/three', data: Buffer.from('') },
];

describe('log segments', () => {
  it('decode back to the records appended, in order', () => {
    const bytes = Buffer.concat(records.map(encodeRecord));
    const { records: got, validBytes } = decodeSegment(bytes);
    expect(got.map((r) => ({ path: r.path, data: r.data && Buffer.from(r.data).toString('hex') }))).toEqual(
      records.map((r) => ({ path: r.path, data: r.data && Buffer.from(r.data).toString('hex') })),
    );
    expect(validBytes).toBe(bytes.byteLength);
  });

  it('stop at a torn tail, wherever the crash cut the last record', () => {
    const whole = records.slice(0, 3).map(encodeRecord);
    const prefix = Buffer.concat(whole.slice(0, 2));
    const last = whole[2]!;
    for (let cut = 0; cut < last.byteLength; cut++) {
      const { records: got, validBytes } = decodeSegment(Buffer.concat([prefix, last.subarray(0, cut)]));
      expect(got.map((r) => r.path), `cut at byte ${cut}`).toEqual([records[0]!.path, records[1]!.path]);
      expect(validBytes).toBe(prefix.byteLength);
    }
  });

  it('stop at a record whose bytes changed, and trust nothing after it', () => {
    const encoded = records.map(encodeRecord);
    const bytes = Buffer.concat(encoded);
    // One bit flipped inside the second record's data.
    bytes[encoded[0]!.byteLength + 40]! ^= 0x01;
    const { records: got } = decodeSegment(bytes);
    expect(got.map((r) => r.path)).toEqual([records[0]!.path]);
  });

  it('appended at once share one sync: the records queued during a sync go in the next one', async () => {
    const log = await WriteAheadLog.create({ dir, segmentBytes: 1 << 30, segmentRecords: 1 << 30, onFull: () => {} }, 0);
    const proto = Object.getPrototypeOf(log.current.fh);
    // A batch is one writev, made durable by the segment's O_DSYNC or by an fdatasync of its own.
    const writev = vi.spyOn(proto, 'writev');
    const datasync = vi.spyOn(proto, 'datasync');
    const syncs = () => (log.current.syncedWrites ? writev.mock.calls.length : datasync.mock.calls.length);
    try {
      await Promise.all(Array.from({ length: 100 }, (_, i) => log.append({ path: `f/${i}`, data: Buffer.from(`blob ${i}`) })));
      // Appended in one turn of the event loop, all 100 share one write and one sync.
      expect(writev.mock.calls.length).toBe(1);
      expect(syncs()).toBe(1);
      // Appended while that sync ran, 10 more share the next one.
      const first = log.append({ path: 'g/first', data: Buffer.from('x') });
      await new Promise((r) => setImmediate(r)); // the flush starts
      const during = Array.from({ length: 10 }, (_, i) => log.append({ path: `g/${i}`, data: Buffer.from('y') }));
      await Promise.all([first, ...during]);
      expect(writev.mock.calls.length).toBe(3);
      expect(syncs()).toBe(3);
      const { records: got } = await readSegments(dir);
      expect(got.map((r) => r.path)).toEqual([...Array.from({ length: 100 }, (_, i) => `f/${i}`), 'g/first', ...Array.from({ length: 10 }, (_, i) => `g/${i}`)]);
    } finally {
      writev.mockRestore();
      datasync.mockRestore();
      await log.close();
    }
  });

  const notLinux = process.platform === 'linux' ? '' : ' (skipped: the descriptor\'s flags are read from /proc/self/fdinfo, which only Linux has)';
  it.skipIf(notLinux !== '')(`writes its segments through O_DSYNC, so a write is its own sync${notLinux}`, async () => {
    const log = await WriteAheadLog.create({ dir, segmentBytes: 1 << 30, segmentRecords: 1 << 30, onFull: () => {} }, 0);
    try {
      const flags = parseInt(/^flags:\s+(\d+)/m.exec(await readFile(`/proc/self/fdinfo/${log.current.fh.fd}`, 'utf8'))![1]!, 8);
      expect(flags & constants.O_DSYNC).toBe(constants.O_DSYNC);
      expect(log.current.syncedWrites).toBe(true);
    } finally {
      await log.close();
    }
  });
});

describe('LoggedFiles', () => {
  // No write-out behind the tests' backs: files appear only where a test asks (or at a checkpoint or a close).
  const options = () => ({ root: join(dir, 'root'), walDir: join(dir, 'root', 'wal'), tempDir: join(dir, 'root', 'tmp'), mode: 0o444, writeOutQuietMs: 60_000 });

  /** Opens, writes, and "crashes": the log is left as a killed process leaves it. */
  async function writeAndCrash(write: (files: LoggedFiles) => Promise<void>): Promise<void> {
    const files = await LoggedFiles.open(options());
    await write(files);
    // No close(): as after kill -9, the segment is still there for the next start.
  }

  it('a put is held in memory once it resolves, then written under its name with the mode asked for', async () => {
    const files = await LoggedFiles.open({ ...options(), writeOutQuietMs: 50 });
    await files.put('sha256/ab/blob', Buffer.from('hello'));
    expect(Buffer.from(files.unwritten('sha256/ab/blob')!).toString()).toBe('hello');
    // Written once the puts pause, not on the put's path.
    await vi.waitFor(async () => expect(await readFile(join(dir, 'root', 'sha256/ab/blob'), 'utf8')).toBe('hello'));
    expect(files.unwritten('sha256/ab/blob')).toBeUndefined();
    expect(await readFile(join(dir, 'root', 'sha256/ab/blob'), 'utf8')).toBe('hello');
    expect((await stat(join(dir, 'root', 'sha256/ab/blob'))).mode & 0o777).toBe(0o444);
    await files.close();
    // A clean close checkpoints: no log is left to replay.
    expect(await readdir(join(dir, 'root', 'wal'))).toEqual([]);
  });

  it('writes files out once the puts pause, not while they keep coming', async () => {
    const files = await LoggedFiles.open({ ...options(), writeOutQuietMs: 400, writeOutMaxDelayMs: 60_000 });
    const written = (name: string) => stat(join(dir, 'root', name)).then(() => true, () => false);
    // A put every 40 ms for a second: never 400 ms without one.
    const started = Date.now();
    for (let i = 0; Date.now() - started < 1_000; i++) {
      await files.put(`busy/${i}`, Buffer.from(`blob ${i}`));
      await new Promise((r) => setTimeout(r, 40));
    }
    expect(await written('busy/0')).toBe(false);
    expect(files.unwrittenCount).toBeGreaterThan(5);
    // Then quiet: everything goes out.
    await vi.waitFor(() => expect(files.unwrittenCount).toBe(0), { timeout: 3_000 });
    expect(await written('busy/0')).toBe(true);
    await files.close();
  });

  it('a steady trickle of puts still gets its files written after the longest delay', async () => {
    const files = await LoggedFiles.open({ ...options(), writeOutQuietMs: 400, writeOutMaxDelayMs: 300 });
    let stop = false;
    const trickle = (async () => {
      for (let i = 0; !stop; i++) {
        await files.put(`trickle/${i}`, Buffer.from(`blob ${i}`));
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    try {
      // Never quiet, yet the first file is written well before the trickle stops.
      await vi.waitFor(() => expect(readFile(join(dir, 'root', 'trickle/0'), 'utf8')).resolves.toBe('blob 0'), { timeout: 3_000 });
    } finally {
      stop = true;
      await trickle;
    }
    await files.close();
  });

  it('replays acknowledged puts at start, even when the crash emptied their files (power loss)', async () => {
    await writeAndCrash(async (files) => {
      await Promise.all([files.put('a/1', Buffer.from('one')), files.put('a/2', Buffer.from('two')), files.put('b/3', Buffer.from('three'))]);
      await files.writeOutAll();
    });
    await truncate(join(dir, 'root', 'a/1'), 0);
    await rm(join(dir, 'root', 'b'), { recursive: true });

    const files = await LoggedFiles.open(options());
    expect(await readFile(join(dir, 'root', 'a/1'), 'utf8')).toBe('one');
    expect(await readFile(join(dir, 'root', 'a/2'), 'utf8')).toBe('two');
    expect(await readFile(join(dir, 'root', 'b/3'), 'utf8')).toBe('three');
    // The old segment is gone once replayed; only the new process's fresh one is there.
    expect((await readdir(join(dir, 'root', 'wal'))).length).toBe(1);
    await files.close();
  });

  it('puts acknowledged but not yet written when the process dies are written at the next start', async () => {
    await writeAndCrash(async (files) => {
      await Promise.all([files.put('a/1', Buffer.from('one')), files.put('b/2', Buffer.from('two'))]);
      await files.put('a/1', Buffer.from('one, again'));
    });
    // Killed before the write-out: only the log holds them.
    await expect(stat(join(dir, 'root', 'a/1'))).rejects.toMatchObject({ code: 'ENOENT' });
    const files = await LoggedFiles.open(options());
    expect(await readFile(join(dir, 'root', 'a/1'), 'utf8')).toBe('one, again');
    expect(await readFile(join(dir, 'root', 'b/2'), 'utf8')).toBe('two');
    await files.close();
  });

  it('a removal, a discard or a later put of an unwritten path: the file never shows the stale bytes', async () => {
    const files = await LoggedFiles.open(options());
    await files.put('a/removed', Buffer.from('x'));
    await files.remove('a/removed');
    expect(files.unwritten('a/removed')).toBeUndefined();
    await files.put('a/discarded', Buffer.from('y'));
    files.discard('a/discarded');
    await files.put('a/replaced', Buffer.from('old'));
    await files.put('a/replaced', Buffer.from('new'));
    expect(Buffer.from(files.unwritten('a/replaced')!).toString()).toBe('new');
    await files.writeOutAll();
    await expect(stat(join(dir, 'root', 'a/removed'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(join(dir, 'root', 'a/discarded'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(join(dir, 'root', 'a/replaced'), 'utf8')).toBe('new');
    expect(files.unwrittenCount).toBe(0);
    await files.close();
  });

  it('a put of a path whose file exists replaces the file, never writes into it: a hard link to the old one keeps its bytes', async () => {
    const files = await LoggedFiles.open(options());
    await files.put('a/entry', Buffer.from('old bytes'));
    files.writeOut('a/entry');
    // As an action's exec root holds a store file: a second name for the same inode.
    await link(join(dir, 'root', 'a/entry'), join(dir, 'linked'));
    await files.put('a/entry', Buffer.from('new'));
    files.writeOut('a/entry');
    expect(await readFile(join(dir, 'root', 'a/entry'), 'utf8')).toBe('new');
    expect(await readFile(join(dir, 'linked'), 'utf8')).toBe('old bytes');
    expect((await stat(join(dir, 'root', 'a/entry'))).mode & 0o777).toBe(0o444);
    await files.close();
  });

  it('writeOut puts one unwritten file in place at once, for a caller that needs the file', async () => {
    const files = await LoggedFiles.open(options());
    await files.put('a/needed', Buffer.from('link me'));
    await files.put('a/other', Buffer.from('later'));
    files.writeOut('a/needed');
    expect(await readFile(join(dir, 'root', 'a/needed'), 'utf8')).toBe('link me');
    expect(files.unwritten('a/needed')).toBeUndefined();
    expect(Buffer.from(files.unwritten('a/other')!).toString()).toBe('later');
    await files.close();
    // A clean close writes everything out.
    expect(await readFile(join(dir, 'root', 'a/other'), 'utf8')).toBe('later');
  });

  it('a removal logged after a put wins at replay', async () => {
    await writeAndCrash(async (files) => {
      await files.put('a/gone', Buffer.from('x'));
      await files.put('a/kept', Buffer.from('y'));
      await files.remove('a/gone');
    });
    const files = await LoggedFiles.open(options());
    await expect(stat(join(dir, 'root', 'a/gone'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(join(dir, 'root', 'a/kept'), 'utf8')).toBe('y');
    await files.close();
  });

  it('replays the intact records before a torn tail and ignores the torn one', async () => {
    await writeAndCrash(async (files) => {
      await files.put('a/whole', Buffer.from('whole'));
    });
    const [segment] = await readdir(join(dir, 'root', 'wal'));
    const torn = encodeRecord({ path: 'a/torn', data: Buffer.from('never acknowledged') });
    await appendFile(join(dir, 'root', 'wal', segment!), torn.subarray(0, torn.byteLength - 5));

    const files = await LoggedFiles.open(options());
    expect(await readFile(join(dir, 'root', 'a/whole'), 'utf8')).toBe('whole');
    await expect(stat(join(dir, 'root', 'a/torn'))).rejects.toMatchObject({ code: 'ENOENT' });
    await files.close();
  });

  it('never writes outside its root, whatever a log record names', async () => {
    await mkdir(join(dir, 'root', 'wal'), { recursive: true });
    const bad = Buffer.concat([
      encodeRecord({ path: '../outside', data: Buffer.from('no') }),
      encodeRecord({ path: '/tmp/absolute-kiln-wal-test', data: Buffer.from('no') }),
      encodeRecord({ path: 'inside', data: Buffer.from('yes') }),
    ]);
    await writeFile(join(dir, 'root', 'wal', '000000000001.wal'), bad);
    const files = await LoggedFiles.open(options());
    await expect(stat(join(dir, 'outside'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(join(dir, 'root', 'inside'), 'utf8')).toBe('yes');
    await expect(files.put('../escape', Buffer.from('no'))).rejects.toThrow(/escapes/);
    await files.close();
  });

  it.each([
    ['one syncfs', true],
    ['an fsync per file', false],
  ])('checkpoints full segments behind the writes and deletes them (%s)', async (_how, syncFileSystem) => {
    const files = await LoggedFiles.open({ ...options(), segmentBytes: 4096, syncFileSystem });
    for (let i = 0; i < 40; i++) await files.put(`s/${i}`, Buffer.alloc(500, i));
    await files.checkpointNow();
    // Only the segment being appended to is left, numbered past the full ones (40 records of
    // about 530 bytes fill a 4 KiB segment every 8); every file is in place.
    const left = await readdir(join(dir, 'root', 'wal'));
    expect(left.length).toBe(1);
    expect(Number(left[0]!.slice(0, 12))).toBeGreaterThanOrEqual(5);
    for (let i = 0; i < 40; i++) expect((await readFile(join(dir, 'root', `s/${i}`))).equals(Buffer.alloc(500, i))).toBe(true);
    await files.close();
  });

  it('ends a segment at its record limit too, however small the records', async () => {
    const files = await LoggedFiles.open({ ...options(), segmentRecords: 4 });
    for (let i = 0; i < 20; i++) await files.put(`t/${i}`, Buffer.from([i]));
    await files.checkpointNow();
    const left = await readdir(join(dir, 'root', 'wal'));
    expect(left.length).toBe(1);
    expect(Number(left[0]!.slice(0, 12))).toBeGreaterThanOrEqual(5);
    await files.close();
  });

  it('a later segment overrides an earlier one at replay', async () => {
    // Two segments, as a crash between a rotation and the first one's checkpoint leaves them.
    await mkdir(join(dir, 'root', 'wal'), { recursive: true });
    await writeFile(join(dir, 'root', 'wal', '000000000001.wal'), encodeRecord({ path: 'a/f', data: Buffer.from('old') }));
    await writeFile(join(dir, 'root', 'wal', '000000000002.wal'), encodeRecord({ path: 'a/f', data: Buffer.from('new') }));
    const files = await LoggedFiles.open(options());
    expect(await readFile(join(dir, 'root', 'a/f'), 'utf8')).toBe('new');
    // The next segment is numbered after the replayed ones.
    expect(await readdir(join(dir, 'root', 'wal'))).toEqual(['000000000003.wal']);
    await files.close();
  });
});
