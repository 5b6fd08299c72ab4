import { describe, expect, it } from 'vitest';
import { ansiToHtml, ansiToSpans, applySgr, color256, escapeHtml, initialAnsiState, spansToHtml } from './ansi';

describe('ansiToSpans', () => {
  it('passes plain text through as one unstyled span', () => {
    const { spans } = ansiToSpans('hello\nworld', initialAnsiState());
    expect(spans).toEqual([{ text: 'hello\nworld', style: {} }]);
  });

  it('splits text at colour changes and resets', () => {
    const { spans } = ansiToSpans('a\x1b[31mred\x1b[0mb', initialAnsiState());
    expect(spans).toEqual([
      { text: 'a', style: {} },
      { text: 'red', style: { fg: { index: 1 } } },
      { text: 'b', style: {} },
    ]);
  });

  it('carries style across chunks', () => {
    const first = ansiToSpans('\x1b[1;32mok', initialAnsiState());
    const second = ansiToSpans(' still green', first.state);
    expect(second.spans).toEqual([{ text: ' still green', style: { bold: true, fg: { index: 2 } } }]);
  });

  it('holds an escape sequence split at a chunk edge until it completes', () => {
    const first = ansiToSpans('x\x1b[3', initialAnsiState());
    expect(first.spans.map((s) => s.text)).toEqual(['x']);
    expect(first.state.pending).toBe('\x1b[3');
    const second = ansiToSpans('4mblue', first.state);
    expect(second.spans).toEqual([{ text: 'blue', style: { fg: { index: 4 } } }]);
  });

  it('drops a dangling escape on the final chunk', () => {
    const { spans, state } = ansiToSpans('end\x1b[', initialAnsiState(), true);
    expect(spans.map((s) => s.text)).toEqual(['end']);
    expect(state.pending).toBe('');
  });

  it('strips non-SGR control sequences and OSC strings', () => {
    const text = 'a\x1b[2K\x1b[1Gb\x1b]0;title\x07c\x1b]8;;http://x\x1b\\d';
    const { spans } = ansiToSpans(text, initialAnsiState());
    expect(spans.map((s) => s.text).join('')).toBe('abcd');
  });

  it('normalises CRLF and removes other C0 controls', () => {
    const { spans } = ansiToSpans('a\r\nb\x07c\td', initialAnsiState());
    expect(spans[0].text).toBe('a\nbc\td');
  });
});

describe('applySgr', () => {
  it('handles bright, default and attribute-off codes', () => {
    let s = applySgr({}, '1;4;91;104');
    expect(s).toEqual({ bold: true, underline: true, fg: { index: 9 }, bg: { index: 12 } });
    s = applySgr(s, '22;24;39;49');
    expect(s).toEqual({});
  });
  it('treats an empty parameter list as reset', () => {
    expect(applySgr({ bold: true }, '')).toEqual({});
  });
  it('parses 256-colour and truecolour, ignoring out-of-range values', () => {
    expect(applySgr({}, '38;5;196').fg).toEqual({ rgb: [255, 0, 0] });
    expect(applySgr({}, '48;2;10;20;30').bg).toEqual({ rgb: [10, 20, 30] });
    expect(applySgr({}, '38;2;300;0;0').fg).toBeUndefined();
    // The parameters after an extended colour are still applied.
    expect(applySgr({}, '38;5;2;1')).toEqual({ fg: { index: 2 }, bold: true });
  });
  it('maps the xterm 256 table', () => {
    expect(color256(3)).toEqual({ index: 3 });
    expect(color256(16)).toEqual({ rgb: [0, 0, 0] });
    expect(color256(231)).toEqual({ rgb: [255, 255, 255] });
    expect(color256(232)).toEqual({ rgb: [8, 8, 8] });
  });
});

describe('HTML output', () => {
  it('escapes markup in log text', () => {
    expect(escapeHtml(`<img src=x onerror="a()">&'`)).toBe('&lt;img src=x onerror=&quot;a()&quot;&gt;&amp;&#39;');
    const html = ansiToHtml('\x1b[31m<script>alert(1)</script>\x1b[0m');
    expect(html).toBe('<span class="ansi-fg-1">&lt;script&gt;alert(1)&lt;/script&gt;</span>');
    expect(html).not.toContain('<script>');
  });
  it('renders attributes as classes and exact colours as inline rgb', () => {
    const html = ansiToHtml('\x1b[1;3;38;2;1;2;3mx');
    expect(html).toBe('<span class="ansi-bold ansi-italic" style="color:rgb(1,2,3)">x</span>');
  });
  it('swaps colours for inverse, using theme defaults when unset', () => {
    const html = spansToHtml([{ text: 'i', style: { inverse: true, fg: { index: 2 } } }]);
    expect(html).toBe('<span class="ansi-fg-default-bg ansi-bg-2">i</span>');
  });
  it('leaves unstyled text bare', () => {
    expect(ansiToHtml('a & b')).toBe('a &amp; b');
  });
});
