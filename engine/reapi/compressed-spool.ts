// Where a compressed upload's received (still compressed) bytes are kept, so the
// upload can resume after Kiln restarts: a zstd decoder's state cannot be saved,
// but it can be rebuilt by feeding it the same bytes again. One file per upload,
// named by a hash of the upload's key (client-chosen ids never become paths).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFully } from '../util/atomic-file';

export interface CompressedSpool {
  /** Compressed bytes kept for `key` (0 when none). */
  size(key: string): Promise<number>;
  append(key: string, data: Uint8Array): Promise<void>;
  /** Makes the appended bytes durable and lets go of the file (a Write call ended; its committed size is about to be acknowledged). */
  sync(key: string): Promise<void>;
  /** The kept bytes, from the start. */
  read(key: string): AsyncIterable<Buffer>;
  remove(key: string): Promise<void>;
  /** Removes what nobody has appended to for `idleMs`. */
  sweep(idleMs: number): Promise<void>;
}

export class DiskCompressedSpool implements CompressedSpool {
  private readonly handles = new Map<string, Promise<FileHandle>>();
  private readonly ready: Promise<void>;

  constructor(
    private readonly dir: string,
    idleMs: number,
  ) {
    // Uploads abandoned while Kiln was down go once they are as old as the idle limit.
    this.ready = mkdir(dir, { recursive: true }).then(() => this.sweep(idleMs));
  }

  async size(key: string): Promise<number> {
    await this.ready;
    try {
      return (await stat(this.pathOf(key))).size;
    } catch {
      return 0;
    }
  }

  async append(key: string, data: Uint8Array): Promise<void> {
    await this.ready;
    let fh = this.handles.get(key);
    if (!fh) {
      fh = open(this.pathOf(key), 'a', 0o600);
      this.handles.set(key, fh);
    }
    await writeFully(await fh, data);
  }

  async sync(key: string): Promise<void> {
    const fh = this.handles.get(key);
    if (!fh) return;
    this.handles.delete(key);
    const handle = await fh;
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async *read(key: string): AsyncGenerator<Buffer> {
    await this.ready;
    yield* createReadStream(this.pathOf(key)) as AsyncIterable<Buffer>;
  }

  async remove(key: string): Promise<void> {
    const fh = this.handles.get(key);
    this.handles.delete(key);
    if (fh) await (await fh).close().catch(() => undefined);
    await rm(this.pathOf(key), { force: true });
  }

  async sweep(idleMs: number): Promise<void> {
    const cutoff = Date.now() - idleMs;
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      const path = join(this.dir, name);
      const st = await stat(path).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) await rm(path, { force: true });
    }
  }

  private pathOf(key: string): string {
    return join(this.dir, `${createHash('sha256').update(key).digest('hex')}.zst`);
  }
}
