// Reconnect delays for the live-event connection: exponential with full jitter,
// so many dashboards don't reconnect in lockstep after an engine restart.

export interface BackoffOptions {
  baseMs?: number;
  maxMs?: number;
  /** Returns a number in [0, 1); injected so tests are deterministic. */
  random?: () => number;
}

export function backoffDelay(attempt: number, { baseMs = 500, maxMs = 15_000, random = Math.random }: BackoffOptions = {}): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  // Never below half the ceiling: a reconnect storm at 0 ms helps nobody.
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
