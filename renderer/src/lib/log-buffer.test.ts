import { describe, expect, it } from 'vitest';
import { LogBuffer } from './log-buffer';

const text = (b: LogBuffer) => b.pieces.map((p) => (p.kind === 'gap' ? `[gap:${p.html}]` : p.html)).join('');
const bytes = (s: string) => new TextEncoder().encode(s);

describe('LogBuffer', () => {
  it('appends chunks in order', () => {
    const b = new LogBuffer();
    b.applyChunk(0, 'line 1\n');
    b.applyChunk(7, 'line 2\n');
    expect(text(b)).toBe('line 1\nline 2\n');
    expect(b.end).toBe(14);
  });

  it('trims the overlap between a fetched log and live chunks', () => {
    const b = new LogBuffer();
    b.applyWhole(bytes('line 1\nline 2\n'));
    b.applyChunk(7, 'line 2\nline 3\n');
    b.applyChunk(0, 'line 1\n'); // replayed from the start
    expect(text(b)).toBe('line 1\nline 2\nline 3\n');
  });

  it('holds chunks beyond a hole until the fetch fills it', () => {
    const b = new LogBuffer();
    b.applyChunk(7, 'line 2\n');
    expect(b.hasHole).toBe(true);
    expect(text(b)).toBe('');
    b.applyWhole(bytes('line 1\n'));
    expect(b.hasHole).toBe(false);
    expect(text(b)).toBe('line 1\nline 2\n');
  });

  it('replaces what it shows when the fetch covers more', () => {
    const b = new LogBuffer();
    b.applyChunk(0, 'a');
    const resets = b.resets;
    b.applyWhole(bytes('abc'));
    expect(text(b)).toBe('abc');
    expect(b.resets).toBe(resets + 1);
    b.applyWhole(bytes('ab')); // older, shorter fetch: ignored
    expect(text(b)).toBe('abc');
  });

  it('shows a gap the server declared, and one the fetch could not fill', () => {
    const b = new LogBuffer();
    b.applyChunk(0, 'start\n');
    b.applyGap(6, 2054);
    b.applyChunk(2054, 'end\n');
    expect(text(b)).toBe('start\n[gap:… 2 KiB not shown …]end\n');

    const c = new LogBuffer();
    c.applyChunk(100, 'late');
    c.applyWhole(bytes('early'));
    expect(text(c)).toBe('early[gap:… 95 B not shown …]late');
  });

  it('counts offsets in bytes, not characters', () => {
    const b = new LogBuffer();
    b.applyChunk(0, 'é\n'); // 3 bytes
    b.applyChunk(3, 'ok');
    b.applyChunk(3, 'ok'); // duplicate
    expect(text(b)).toBe('é\nok');
  });

  it('renders colours across chunk boundaries and escapes markup', () => {
    const b = new LogBuffer();
    b.applyChunk(0, '\x1b[3');
    b.applyChunk(3, '1m<b>err</b>');
    b.finish();
    expect(text(b)).toBe('<span class="ansi-fg-1">&lt;b&gt;err&lt;/b&gt;</span>');
    expect(b.finished).toBe(true);
  });

  it('merges old pieces to bound their number without losing text', () => {
    const b = new LogBuffer(4);
    let off = 0;
    for (let i = 0; i < 10; i++) {
      const s = `${i}\n`;
      b.applyChunk(off, s);
      off += s.length;
    }
    expect(b.pieces.length).toBeLessThanOrEqual(4);
    expect(text(b)).toBe('0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n');
  });
});
