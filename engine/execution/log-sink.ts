// Where an action's stdout/stderr go. Runners that can write straight into a
// file (the launcher: the fast path) use `path`; executors that receive bytes
// from elsewhere (a remote executor) call write()/end(). engine/logs follows
// the files either way.
import { appendFile } from 'node:fs/promises';

export interface LogSink {
  /** A local file that holds the log, when there is one. */
  readonly path?: string;
  write(chunk: Uint8Array | string): Promise<void>;
  end(): Promise<void>;
}

/** A log kept in a local file; writes append. */
export class FileLogSink implements LogSink {
  constructor(readonly path: string) {}

  async write(chunk: Uint8Array | string): Promise<void> {
    await appendFile(this.path, chunk);
  }

  async end(): Promise<void> {}
}
