// A fixed-bucket histogram (cumulative, Prometheus style). Memory is constant.
import type { HistogramSnapshot } from '../common/api-types';

/** Milliseconds: from a cache-hit blip to a long link step. */
export const DURATION_BUCKETS_MS = [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000];

export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly bounds: readonly number[] = DURATION_BUCKETS_MS) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) throw new Error('histogram bounds must be strictly increasing');
    }
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }

  snapshot(): HistogramSnapshot {
    let cumulative = 0;
    const buckets = this.counts.map((c, i) => {
      cumulative += c;
      return { le: i < this.bounds.length ? this.bounds[i] : null, count: cumulative };
    });
    return { unit: 'ms', buckets, sum: this.sum, count: this.count };
  }
}
