// SGR (Select Graphic Rendition) escape sequences → styled spans, for build logs.
// The converter is stateful across chunks because a live log arrives in pieces:
// a colour set in one chunk applies to the next, and an escape sequence may be
// split at a chunk edge. Every other control sequence (cursor movement, OSC
// titles/hyperlinks) is dropped. Text is only ever emitted HTML-escaped.

export interface Style {
  fg?: Color;
  bg?: Color;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
  inverse?: boolean;
}

/** A palette index 0–15 (themed by CSS) or an exact RGB from 256-colour/truecolour codes. */
export type Color = { index: number } | { rgb: [number, number, number] };

export interface Span {
  text: string;
  style: Style;
}

export interface AnsiState {
  style: Style;
  /** An incomplete escape sequence carried over from the previous chunk. */
  pending: string;
}

export function initialAnsiState(): AnsiState {
  return { style: {}, pending: '' };
}

// CSI: ESC [ params intermediates final; OSC: ESC ] ... (BEL | ESC \); other two-byte escapes.
const ESCAPE = /\x1b(?:\[([0-9;:?<=>]*)[ -\/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;
// An escape that might still complete with more input.
const INCOMPLETE_TAIL = /\x1b(?:\[[0-9;:?<=>]*[ -\/]*|\][^\x07\x1b]*\x1b?)?$/;

/**
 * Converts one chunk. Returns the spans for the text that is complete and the
 * state to pass with the next chunk. Pass `final: true` for the last chunk so a
 * dangling escape is dropped rather than held forever.
 */
export function ansiToSpans(chunk: string, state: AnsiState, final = false): { spans: Span[]; state: AnsiState } {
  let input = state.pending + chunk;
  let pending = '';
  const tail = INCOMPLETE_TAIL.exec(input);
  if (tail && !final) {
    pending = tail[0];
    input = input.slice(0, tail.index);
  } else if (tail) {
    input = input.slice(0, tail.index);
  }

  const spans: Span[] = [];
  let style = state.style;
  let last = 0;
  const push = (text: string) => {
    if (!text) return;
    // Windows line endings and stray carriage returns would render as blank glyphs.
    const clean = text.replace(/\r\n/g, '\n').replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '');
    if (!clean) return;
    const prev = spans[spans.length - 1];
    if (prev && prev.style === style) prev.text += clean;
    else spans.push({ text: clean, style });
  };

  ESCAPE.lastIndex = 0;
  for (let m = ESCAPE.exec(input); m; m = ESCAPE.exec(input)) {
    push(input.slice(last, m.index));
    last = ESCAPE.lastIndex;
    if (m[2] === 'm') style = applySgr(style, m[1] ?? '');
  }
  push(input.slice(last));
  return { spans, state: { style, pending } };
}

/** Applies one SGR parameter list to a style, returning a new style object. */
export function applySgr(current: Style, params: string): Style {
  const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  let s: Style = { ...current };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) s = {};
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 7) s.inverse = true;
    else if (c === 22) (s.bold = undefined), (s.dim = undefined);
    else if (c === 23) s.italic = undefined;
    else if (c === 24) s.underline = undefined;
    else if (c === 27) s.inverse = undefined;
    else if (c >= 30 && c <= 37) s.fg = { index: c - 30 };
    else if (c >= 90 && c <= 97) s.fg = { index: c - 90 + 8 };
    else if (c === 39) s.fg = undefined;
    else if (c >= 40 && c <= 47) s.bg = { index: c - 40 };
    else if (c >= 100 && c <= 107) s.bg = { index: c - 100 + 8 };
    else if (c === 49) s.bg = undefined;
    else if (c === 38 || c === 48) {
      const { color, consumed } = extendedColor(codes, i + 1);
      i += consumed;
      if (c === 38) s.fg = color;
      else s.bg = color;
    }
  }
  return compact(s);
}

function extendedColor(codes: number[], at: number): { color: Color | undefined; consumed: number } {
  const mode = codes[at];
  if (mode === 5) {
    const n = codes[at + 1];
    return { color: valid8(n) ? color256(n) : undefined, consumed: 2 };
  }
  if (mode === 2) {
    const [r, g, b] = codes.slice(at + 1, at + 4);
    const ok = [r, g, b].every(valid8);
    return { color: ok ? { rgb: [r, g, b] } : undefined, consumed: 4 };
  }
  return { color: undefined, consumed: 0 };
}

function valid8(n: number | undefined): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 255;
}

/** xterm's 256-colour table: 16 palette entries, a 6×6×6 cube, then 24 greys. */
export function color256(n: number): Color {
  if (n < 16) return { index: n };
  if (n < 232) {
    const v = n - 16;
    const level = (x: number) => (x === 0 ? 0 : 55 + x * 40);
    return { rgb: [level(Math.floor(v / 36)), level(Math.floor(v / 6) % 6), level(v % 6)] };
  }
  const grey = 8 + (n - 232) * 10;
  return { rgb: [grey, grey, grey] };
}

function compact(s: Style): Style {
  const out: Style = {};
  for (const [k, v] of Object.entries(s) as [keyof Style, unknown][]) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch]);
}

/**
 * Renders spans as HTML. Text is escaped; attributes are built only from the
 * style's numbers and fixed class names, never from log content.
 */
export function spansToHtml(spans: Span[]): string {
  let html = '';
  for (const { text, style } of spans) {
    const classes: string[] = [];
    const css: string[] = [];
    let fg = style.fg;
    let bg = style.bg;
    if (style.inverse) [fg, bg] = [bg ?? { index: -1 }, fg ?? { index: -2 }];
    addColor(fg, 'fg', classes, css);
    addColor(bg, 'bg', classes, css);
    if (style.bold) classes.push('ansi-bold');
    if (style.dim) classes.push('ansi-dim');
    if (style.italic) classes.push('ansi-italic');
    if (style.underline) classes.push('ansi-underline');
    const body = escapeHtml(text);
    if (!classes.length && !css.length) {
      html += body;
      continue;
    }
    const cls = classes.length ? ` class="${classes.join(' ')}"` : '';
    const st = css.length ? ` style="${css.join(';')}"` : '';
    html += `<span${cls}${st}>${body}</span>`;
  }
  return html;
}

function addColor(c: Color | undefined, which: 'fg' | 'bg', classes: string[], css: string[]): void {
  if (!c) return;
  if ('index' in c) {
    // -1/-2 stand for "the default background/foreground" when inverse swaps an unset colour.
    if (c.index === -1) classes.push(`ansi-${which}-default-bg`);
    else if (c.index === -2) classes.push(`ansi-${which}-default-fg`);
    else classes.push(`ansi-${which}-${c.index | 0}`);
    return;
  }
  const [r, g, b] = c.rgb.map((x) => x | 0);
  css.push(`${which === 'fg' ? 'color' : 'background-color'}:rgb(${r},${g},${b})`);
}

/** Convenience for whole texts (finished logs). */
export function ansiToHtml(text: string): string {
  return spansToHtml(ansiToSpans(text, initialAnsiState(), true).spans);
}
