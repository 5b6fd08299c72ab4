// Coalesces bursts: engine events can arrive thousands of times a second, the tray needs
// a few repaints per second. Trailing on purpose: the engine's metrics subscribers run
// after ours for the same event, so reading a snapshot synchronously would be one event
// stale; a repaint one interval later always sees the latest state.

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface Coalesced {
  (): void;
  cancel(): void;
}

/** Runs fn once, ms after the first call of a burst; calls in between add nothing. */
export function coalesce(fn: () => void, ms: number, timers: Timers = realTimers): Coalesced {
  let timer: unknown;
  const call = (() => {
    if (timer !== undefined) return;
    timer = timers.setTimeout(() => {
      timer = undefined;
      fn();
    }, ms);
  }) as Coalesced;
  call.cancel = () => {
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = undefined;
  };
  return call;
}
