// The bench's one table: rows of Kiln against a baseline from the same run,
// each with its target and a pass/short verdict; also as JSON for comparing
// a later run against an earlier one (--compare).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Spread } from './lib';

export type Verdict = 'pass' | 'short' | 'n/a';

export interface Row {
  /** Stable key: --only sections and --compare match on it. */
  id: string;
  metric: string;
  kiln: string;
  baseline: string;
  comparison: string;
  target: string;
  verdict?: Verdict;
  /** The figure the target is about (and --compare shows), in the row's unit. */
  figure?: number;
  /** Raw medians and spreads, for whoever reads the JSON. */
  data?: Record<string, unknown>;
}

export interface Report {
  startedAt: string;
  wallSeconds: number;
  mode: string;
  machine: { node: string; cpus: number; cpuModel: string; loadBefore: number[]; loadAfter: number[] };
  rows: Row[];
  notes: string[];
}

export const fmt = (n: number | undefined, digits = 1): string => (n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

/** "12.3 (11.9–13.0)": the median and its spread. */
export function fmtSpread(s: Spread, digits = 1): string {
  if (!Number.isFinite(s.median)) return 'n/a';
  if (s.n < 2) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.lo, digits)}–${fmt(s.hi, digits)})`;
}

/** A verdict for `value` against a bound; n/a when either side is unknown. */
export function verdict(value: number, op: '<=' | '>=', bound: number): Verdict {
  if (!Number.isFinite(value) || !Number.isFinite(bound)) return 'n/a';
  return (op === '<=' ? value <= bound : value >= bound) ? 'pass' : 'short';
}

export function printTable(rows: Row[], notes: string[]): void {
  const header = { metric: 'metric', kiln: 'Kiln', baseline: 'baseline', comparison: 'comparison', target: 'target', verdict: '' };
  const cells = rows.map((r) => ({ ...r, verdict: r.verdict ?? '' }));
  const all = [header, ...cells];
  const width = (k: keyof typeof header) => Math.max(...all.map((r) => String(r[k] ?? '').length));
  const w = { metric: width('metric'), kiln: width('kiln'), baseline: width('baseline'), comparison: width('comparison'), target: width('target') };
  const line = (r: typeof header) =>
    [
      r.metric.padEnd(w.metric),
      r.kiln.padStart(w.kiln),
      r.baseline.padStart(w.baseline),
      r.comparison.padEnd(w.comparison),
      r.target.padEnd(w.target),
      r.verdict,
    ]
      .join('  ')
      .trimEnd();
  console.log(line(header));
  console.log('-'.repeat(line(header).length + 6));
  for (const r of cells) console.log(line(r));
  for (const n of notes) console.log(`note: ${n}`);
}

export function writeReport(file: string, report: Report): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
}

/** Prints each row's figure from an earlier run's JSON beside this run's. */
export function printComparison(file: string, now: Report): void {
  if (!existsSync(file)) {
    console.log(`compare: ${file} not found`);
    return;
  }
  const before = JSON.parse(readFileSync(file, 'utf8')) as Report;
  const old = new Map(before.rows.map((r) => [r.id, r]));
  console.log(`\ncompared with ${file} (${before.startedAt}, ${before.mode}):`);
  const lines = now.rows.map((r) => {
    const o = old.get(r.id);
    const change = o?.figure !== undefined && r.figure !== undefined && o.figure !== 0 ? `×${fmt(r.figure / o.figure, 2)}` : '';
    return [r.metric, o ? `${fmt(o.figure, 2)} ${o.verdict ?? ''}`.trim() : '—', `${fmt(r.figure, 2)} ${r.verdict ?? ''}`.trim(), change];
  });
  const w = [0, 1, 2].map((i) => Math.max(...lines.map((l) => l[i].length), ['metric', 'before', 'now'][i].length));
  const out = (l: string[]) => `${l[0].padEnd(w[0])}  ${l[1].padStart(w[1])}  ${l[2].padStart(w[2])}  ${l[3]}`.trimEnd();
  console.log(out(['metric', 'before', 'now', 'change']));
  for (const l of lines) console.log(out(l));
}
