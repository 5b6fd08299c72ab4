// One stream (stdout or stderr) of an action's log as the dashboard shows it:
// assembled from a whole-log fetch and live SSE chunks, which overlap and may
// arrive in either order. Byte offsets from the API decide what is new. The
// output is a list of HTML pieces (ANSI colours rendered, text escaped) that
// only grows, so a view can append without re-rendering what it already shows.
import { ansiToSpans, escapeHtml, initialAnsiState, spansToHtml, type AnsiState } from './ansi';
import { formatBytes } from './format';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

export type LogPiece = { kind: 'text'; html: string } | { kind: 'gap'; html: string };

interface PendingChunk {
  offset: number;
  bytes: Uint8Array;
}

export class LogBuffer {
  private _pieces: LogPiece[] = [];
  private ansi: AnsiState = initialAnsiState();
  private pending: PendingChunk[] = [];
  /** Bytes of the log accounted for so far. */
  private _end = 0;
  private _finished = false;
  /** Bumped on every change, including resets; views watch it. */
  version = 0;
  /** Bumped when already-shown pieces changed (not just appended), so views re-render fully. */
  resets = 0;

  /** Largest number of pieces before older ones are merged, to bound DOM nodes. */
  constructor(private readonly maxPieces = 400) {}

  get end(): number {
    return this._end;
  }
  get finished(): boolean {
    return this._finished;
  }
  get pieces(): readonly LogPiece[] {
    return this._pieces;
  }
  /** Chunks are waiting beyond a hole: the caller should fetch the whole log. */
  get hasHole(): boolean {
    return this.pending.length > 0;
  }
  get isEmpty(): boolean {
    return this._end === 0 && !this.pending.length;
  }

  /** A live chunk at a byte offset. */
  applyChunk(offset: number, data: string): void {
    this.insertPending({ offset, bytes: encoder.encode(data) });
    this.drain();
  }

  /**
   * The whole log (or its prefix) as fetched over HTTP. If it covers more than we
   * have, it replaces what is shown: HTTP bytes are exact where SSE text may have
   * been decoded leniently at chunk edges.
   */
  applyWhole(bytes: Uint8Array): void {
    if (bytes.length <= this._end && !this.hasHole) return;
    if (bytes.length > this._end) {
      this._pieces = [];
      this.ansi = initialAnsiState();
      this._end = 0;
      this.resets++;
      this.append(bytes);
    }
    this.drain();
    // A hole the fetch did not cover was skipped by the server: show it as a gap.
    while (this.pending.length) {
      this.gapTo(this.pending[0].offset);
      this.drain();
    }
  }

  /** The server skipped [from, to) because we fell behind. */
  applyGap(from: number, to: number): void {
    if (to <= this._end) return;
    if (from > this._end) this.insertPending({ offset: from, bytes: new Uint8Array(0) });
    this.gapTo(to);
    this.drain();
  }

  /** The stream is complete: flush any escape sequence held at the end. */
  finish(): void {
    if (this._finished) return;
    this._finished = true;
    const { spans } = ansiToSpans('', this.ansi, true);
    if (spans.length) this.pushPiece({ kind: 'text', html: spansToHtml(spans) });
    this.version++;
  }

  private insertPending(c: PendingChunk): void {
    let i = this.pending.length;
    while (i > 0 && this.pending[i - 1].offset > c.offset) i--;
    this.pending.splice(i, 0, c);
  }

  private drain(): void {
    while (this.pending.length && this.pending[0].offset <= this._end) {
      const c = this.pending.shift()!;
      const skip = this._end - c.offset;
      if (skip < c.bytes.length) this.append(c.bytes.subarray(skip));
    }
  }

  private gapTo(to: number): void {
    if (to <= this._end) return;
    const skipped = to - this._end;
    // Styles don't survive a gap: the escape that would reset them may be in it.
    this.ansi = initialAnsiState();
    this.pushPiece({ kind: 'gap', html: escapeHtml(`… ${formatBytes(skipped)} not shown …`) });
    this._end = to;
    this.version++;
  }

  private append(bytes: Uint8Array): void {
    if (!bytes.length) return;
    this._end += bytes.length;
    const { spans, state } = ansiToSpans(decoder.decode(bytes), this.ansi);
    this.ansi = state;
    if (spans.length) this.pushPiece({ kind: 'text', html: spansToHtml(spans) });
    this.version++;
  }

  private pushPiece(p: LogPiece): void {
    this._pieces.push(p);
    if (this._pieces.length > this.maxPieces) {
      // Merge the older half into one piece: fewer DOM nodes, same text.
      const half = this._pieces.length >> 1;
      const merged = this._pieces
        .slice(0, half)
        .map((x) => (x.kind === 'gap' ? `<span class="log-gap">${x.html}</span>` : x.html))
        .join('');
      this._pieces = [{ kind: 'text', html: merged }, ...this._pieces.slice(half)];
      this.resets++;
    }
  }
}
