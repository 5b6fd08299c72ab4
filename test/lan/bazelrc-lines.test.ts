// Every .bazelrc line Kiln prints must survive Bazel's rc parser, which splits
// a line into words the way a shell does: whitespace separates, single and
// double quotes group (and are dropped), backslash escapes, '#' starts a
// comment. Before the token header was quoted, "Bearer TOKEN" split in two and
// Bazel read TOKEN as a target. The real-Bazel check is test/e2e/bazel-lan.test.ts.
import { describe, expect, it } from 'vitest';
import { tokenHeaderFlag } from '../../engine/common/bazel-flags';
import { bazelrcLines } from '../../engine/lan/connect';
import { bazelrcSnippet } from '../../renderer/src/lib/bazelrc';

/** Bazel's rc-line word splitting (src/main/cpp/util/strings.cc Tokenize, as documented). */
function rcWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i];
    } else if (c === '#' && word === undefined) {
      break;
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

describe('.bazelrc lines Kiln prints', () => {
  it('reads the tokenizer the way Bazel does (an unquoted header splits, a quoted one does not)', () => {
    expect(rcWords('build --remote_header=authorization=Bearer kiln_x')).toEqual(['build', '--remote_header=authorization=Bearer', 'kiln_x']);
    expect(rcWords('build --remote_header=authorization="Bearer kiln_x"')).toEqual(['build', '--remote_header=authorization=Bearer kiln_x']);
  });

  it('keeps the token header one word: command, then a single flag whose value is "Bearer TOKEN"', () => {
    expect(rcWords(`build ${tokenHeaderFlag('kiln_AbC-123_x')}`)).toEqual(['build', '--remote_header=authorization=Bearer kiln_AbC-123_x']);
  });

  it('gives every line of `kiln connect` and GET /api/connect exactly two words', () => {
    const lines = bazelrcLines({ host: '192.168.1.20', grpcPort: 8980, tls: true, caPath: '/home/k/.local/share/kiln/tls/ca.pem', token: 'kiln_tok' });
    for (const line of lines) expect(rcWords(line), line).toHaveLength(2);
    expect(rcWords(lines[2])[1]).toBe('--remote_header=authorization=Bearer kiln_tok');
  });

  it("gives every line of the dashboard's fallback snippet exactly two words", () => {
    const snippet = bazelrcSnippet({ grpcUrl: 'grpc://10.0.0.5:8980', concurrency: 4, instanceName: 'main', tokenRequired: true });
    for (const line of snippet.trim().split('\n')) expect(rcWords(line), line).toHaveLength(2);
  });
});
