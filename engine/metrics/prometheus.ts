// Prometheus text exposition (format 0.0.4): HELP/TYPE once per family, then samples.
import type { HistogramSnapshot } from '../common/api-types';

export type Labels = Record<string, string>;

export class PromText {
  private readonly lines: string[] = [];

  gauge(name: string, help: string, samples: number | [Labels, number][]): this {
    return this.family(name, 'gauge', help, samples);
  }

  counter(name: string, help: string, samples: number | [Labels, number][]): this {
    return this.family(name, 'counter', help, samples);
  }

  /** `h` is in milliseconds; Prometheus convention is base units, so `scale` converts (1e-3 → seconds). */
  histogram(name: string, help: string, h: HistogramSnapshot, scale = 1e-3): this {
    this.header(name, 'histogram', help);
    for (const b of h.buckets) {
      this.sample(`${name}_bucket`, { le: b.le === null ? '+Inf' : formatNumber(b.le * scale) }, b.count);
    }
    this.sample(`${name}_sum`, {}, h.sum * scale);
    this.sample(`${name}_count`, {}, h.count);
    return this;
  }

  toString(): string {
    return this.lines.join('\n') + '\n';
  }

  private family(name: string, type: string, help: string, samples: number | [Labels, number][]): this {
    this.header(name, type, help);
    if (typeof samples === 'number') this.sample(name, {}, samples);
    else for (const [labels, v] of samples) this.sample(name, labels, v);
    return this;
  }

  private header(name: string, type: string, help: string): void {
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
  }

  private sample(name: string, labels: Labels, value: number): void {
    const keys = Object.keys(labels);
    const l = keys.length ? `{${keys.map((k) => `${k}="${escapeLabel(labels[k])}"`).join(',')}}` : '';
    this.lines.push(`${name}${l} ${formatNumber(value)}`);
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(Number.isInteger(v) ? v : Number(v.toPrecision(12)));
}
