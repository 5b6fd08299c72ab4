// What Kiln accepts for the settings that can be set at start (flags, the
// config file, settings.json) and changed live (the dashboard). Declared once,
// so a value accepted at start is accepted live and the other way round; the
// dashboard's form checks against the same numbers.

/** A setting PUT /api/settings can change. */
export type SettingName = 'lan' | 'concurrency' | 'cacheSize' | 'invocationHistory' | 'invocationHistoryDays';

export const MIN_CONCURRENCY = 1;
/** Far above any one machine's useful parallelism; each slot is a process and an exec root. */
export const MAX_CONCURRENCY = 1024;
/** The smallest cache budget: below this Bazel's inputs thrash (a blob is evicted before the action that needs it runs). */
export const MIN_CACHE_BUDGET_BYTES = 64 * 1024 ** 2;

/** The invocation history budget: how many Bazel invocations are kept (with their build events), and for how many days. */
export const MIN_INVOCATION_HISTORY = 10;
export const MAX_INVOCATION_HISTORY = 100_000;
export const MAX_INVOCATION_HISTORY_DAYS = 365;

/** A settings value Kiln does not accept; the message names the setting and what it accepts. */
export class InvalidSettingError extends Error {}

export function concurrencyProblem(value: unknown): string | undefined {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < MIN_CONCURRENCY || value > MAX_CONCURRENCY) {
    return `concurrency must be a whole number of worker slots from ${MIN_CONCURRENCY} to ${MAX_CONCURRENCY}, not ${JSON.stringify(value)}`;
  }
  return undefined;
}

export function cacheBudgetProblem(value: unknown): string | undefined {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < MIN_CACHE_BUDGET_BYTES) {
    return `the cache budget must be at least 64 MiB (${MIN_CACHE_BUDGET_BYTES} bytes), not ${JSON.stringify(value)}`;
  }
  return undefined;
}

export function checkConcurrency(value: unknown): number {
  const problem = concurrencyProblem(value);
  if (problem) throw new InvalidSettingError(problem);
  return value as number;
}

export function checkCacheBudget(value: unknown): number {
  const problem = cacheBudgetProblem(value);
  if (problem) throw new InvalidSettingError(problem);
  return value as number;
}

export function invocationHistoryProblem(value: unknown): string | undefined {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < MIN_INVOCATION_HISTORY || value > MAX_INVOCATION_HISTORY) {
    return `the invocation history must keep a whole number of invocations from ${MIN_INVOCATION_HISTORY} to ${MAX_INVOCATION_HISTORY}, not ${JSON.stringify(value)}`;
  }
  return undefined;
}

export function invocationHistoryDaysProblem(value: unknown): string | undefined {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_INVOCATION_HISTORY_DAYS) {
    return `the invocation history must keep a whole number of days from 1 to ${MAX_INVOCATION_HISTORY_DAYS}, not ${JSON.stringify(value)}`;
  }
  return undefined;
}

export function checkInvocationHistory(value: unknown): number {
  const problem = invocationHistoryProblem(value);
  if (problem) throw new InvalidSettingError(problem);
  return value as number;
}

export function checkInvocationHistoryDays(value: unknown): number {
  const problem = invocationHistoryDaysProblem(value);
  if (problem) throw new InvalidSettingError(problem);
  return value as number;
}
