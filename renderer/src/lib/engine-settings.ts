// View logic for the Settings view's worker slots and cache budget: the +/−
// stepper, the size field with its unit, what changed, checks matching the
// engine's (the limits are the engine's own, engine/common/settings-limits.ts),
// and how to read the engine's answer.
import type { SettingsRequest, SettingsResponse } from '../../../engine/common/api-types';
import { MAX_CONCURRENCY, MIN_CACHE_BUDGET_BYTES, MIN_CONCURRENCY } from '../../../engine/common/settings-limits';

export const SIZE_UNITS = ['MiB', 'GiB', 'TiB'] as const;
export type SizeUnit = (typeof SIZE_UNITS)[number];
const UNIT_BYTES: Record<SizeUnit, number> = { MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

export interface EngineSettingsForm {
  concurrency: string;
  budgetAmount: string;
  budgetUnit: SizeUnit;
}

export interface LiveValues {
  concurrency: number;
  cacheSizeBytes: number;
}

/** The form as the engine's current values fill it: the largest unit that keeps the number ≥ 1. */
export function formFor(v: LiveValues): EngineSettingsForm {
  const unit = [...SIZE_UNITS].reverse().find((u) => v.cacheSizeBytes >= UNIT_BYTES[u]) ?? 'MiB';
  return { concurrency: String(v.concurrency), budgetAmount: String(Number((v.cacheSizeBytes / UNIT_BYTES[unit]).toFixed(2))), budgetUnit: unit };
}

function parseConcurrency(text: string): number | undefined {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : undefined;
}

/** The +/− buttons: one step from what is typed (or `fallback`), kept within 1…1024. */
export function stepConcurrency(text: string, delta: number, fallback: number): number {
  const n = parseConcurrency(text) ?? fallback;
  return Math.min(MAX_CONCURRENCY, Math.max(MIN_CONCURRENCY, n + delta));
}

export function concurrencyProblem(text: string): string | null {
  const n = parseConcurrency(text);
  if (n === undefined) return 'Worker slots must be a whole number.';
  if (n < MIN_CONCURRENCY || n > MAX_CONCURRENCY) return `Worker slots must be from ${MIN_CONCURRENCY} to ${MAX_CONCURRENCY}.`;
  return null;
}

/** Bytes the size field means (floored, as the engine's parser does), or undefined when it is not a number. */
export function budgetBytes(amount: string, unit: SizeUnit): number | undefined {
  if (!/^\s*\d+(\.\d+)?\s*$/.test(amount)) return undefined;
  return Math.floor(Number(amount) * UNIT_BYTES[unit]);
}

export function budgetProblem(amount: string, unit: SizeUnit): string | null {
  const bytes = budgetBytes(amount, unit);
  if (bytes === undefined) return 'The cache budget must be a number, like 20 or 1.5.';
  if (bytes < MIN_CACHE_BUDGET_BYTES) return 'The cache budget must be at least 64 MiB.';
  return null;
}

/**
 * What Save would send: only the fields that differ from the engine's values, the budget
 * as a size string ("20GiB") for the engine to parse. `problem` is set when a changed field
 * is invalid; `body` is null when there is nothing to save.
 */
export function settingsChanges(current: LiveValues, form: EngineSettingsForm): { body: SettingsRequest | null; problem: string | null } {
  const body: SettingsRequest = {};
  const n = parseConcurrency(form.concurrency);
  if (n !== current.concurrency) {
    const problem = concurrencyProblem(form.concurrency);
    if (problem) return { body: null, problem };
    body.concurrency = n;
  }
  const bytes = budgetBytes(form.budgetAmount, form.budgetUnit);
  if (bytes !== current.cacheSizeBytes) {
    const problem = budgetProblem(form.budgetAmount, form.budgetUnit);
    if (problem) return { body: null, problem };
    body.cacheSize = `${form.budgetAmount.trim()}${form.budgetUnit}`;
  }
  return { body: Object.keys(body).length ? body : null, problem: null };
}

export type AnswerTone = 'ok' | 'warn';

/** How the Settings view shows the engine's answer to a save. */
export function describeAnswer(r: Pick<SettingsResponse, 'message' | 'appliedNow' | 'appliedAtRestart'>): { badge: string; tone: AnswerTone; text: string } {
  const later = (r.appliedAtRestart ?? []).filter((n) => n !== 'lan');
  if (later.length) return { badge: 'Restart required', tone: 'warn', text: r.message };
  if ((r.appliedNow ?? []).length) return { badge: 'Applied now', tone: 'ok', text: r.message };
  return { badge: 'Saved', tone: 'ok', text: r.message };
}
