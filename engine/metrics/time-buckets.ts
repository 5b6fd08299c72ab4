// Sums over a sliding time window in fixed-size buckets (a ring), so rates and
// busy fractions cost constant memory however many events arrive.
export class TimeBuckets {
  private readonly values: Float64Array;
  /** Which bucket index (time / bucketMs) each slot currently holds. */
  private readonly tags: Float64Array;

  constructor(
    readonly bucketMs: number,
    readonly buckets: number,
  ) {
    this.values = new Float64Array(buckets);
    this.tags = new Float64Array(buckets).fill(-1);
  }

  /** Adds `value` at time `at`. */
  add(at: number, value: number): void {
    const idx = Math.floor(at / this.bucketMs);
    const slot = idx % this.buckets;
    if (this.tags[slot] !== idx) {
      this.tags[slot] = idx;
      this.values[slot] = 0;
    }
    this.values[slot] += value;
  }

  /** Adds the length of [from, to) split across the buckets it spans (busy time). */
  addSpan(from: number, to: number): void {
    let t = from;
    while (t < to) {
      const end = Math.min(to, (Math.floor(t / this.bucketMs) + 1) * this.bucketMs);
      this.add(t, end - t);
      t = end;
    }
  }

  /** Sum of the buckets within `windowMs` before `now` (whole buckets). */
  sum(now: number, windowMs: number): number {
    const last = Math.floor(now / this.bucketMs);
    const first = Math.floor((now - windowMs) / this.bucketMs) + 1;
    let total = 0;
    for (let i = 0; i < this.buckets; i++) {
      const tag = this.tags[i];
      if (tag >= first && tag <= last) total += this.values[i];
    }
    return total;
  }
}
