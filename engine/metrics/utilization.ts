// Time-weighted busy fraction of one worker slot over the last minute and hour.
import { TimeBuckets } from './time-buckets';

export class SlotUtilization {
  private readonly minute = new TimeBuckets(1_000, 61);
  private readonly hour = new TimeBuckets(60_000, 61);
  /** Start of the busy span not yet added to the buckets. */
  private busySince?: number;

  constructor(private readonly createdAt: number) {}

  setBusy(busy: boolean, at: number): void {
    if (busy && this.busySince === undefined) this.busySince = at;
    if (!busy && this.busySince !== undefined) {
      this.addSpan(this.busySince, at);
      this.busySince = undefined;
    }
  }

  /** Busy fraction in [0, 1] over the last `windowMs` (or since creation when younger). */
  fraction(now: number, window: '1m' | '1h'): number {
    if (this.busySince !== undefined && now > this.busySince) {
      this.addSpan(this.busySince, now);
      this.busySince = now;
    }
    const buckets = window === '1m' ? this.minute : this.hour;
    const windowMs = window === '1m' ? 60_000 : 3_600_000;
    // sum() covers whole buckets after now - windowMs; measure the same span.
    const firstCovered = (Math.floor((now - windowMs) / buckets.bucketMs) + 1) * buckets.bucketMs;
    const span = now - Math.max(firstCovered, this.createdAt);
    if (span <= 0) return this.busySince !== undefined ? 1 : 0;
    return Math.min(1, Math.max(0, buckets.sum(now, windowMs) / span));
  }

  private addSpan(from: number, to: number): void {
    this.minute.addSpan(from, to);
    this.hour.addSpan(from, to);
  }
}
