// View logic for the Settings view's invocation history budget: how many Bazel
// invocations (with their build events) the history keeps, and for how many
// days. The limits are the engine's own (engine/common/settings-limits.ts).
import type { SettingsRequest } from '../../../engine/common/api-types';
import { MAX_INVOCATION_HISTORY, MAX_INVOCATION_HISTORY_DAYS, MIN_INVOCATION_HISTORY } from '../../../engine/common/settings-limits';

export interface HistoryForm {
  invocations: string;
  days: string;
}

export interface HistoryValues {
  invocationHistory: number;
  invocationHistoryDays: number;
}

export function historyFormFor(v: HistoryValues): HistoryForm {
  return { invocations: String(v.invocationHistory), days: String(v.invocationHistoryDays) };
}

const whole = (text: string) => (/^\s*\d+\s*$/.test(text) ? Number(text) : undefined);

/**
 * What Save would send: only the fields that differ from the engine's values. `problem`
 * names the first invalid changed field; `body` is null when there is nothing to save.
 */
export function historyChanges(current: HistoryValues, form: HistoryForm): { body: SettingsRequest | null; problem: string | null } {
  const body: SettingsRequest = {};
  const n = whole(form.invocations);
  if (n !== current.invocationHistory) {
    if (n === undefined || n < MIN_INVOCATION_HISTORY || n > MAX_INVOCATION_HISTORY) {
      return { body: null, problem: `Keep a whole number of invocations from ${MIN_INVOCATION_HISTORY} to ${MAX_INVOCATION_HISTORY.toLocaleString('en-US')}.` };
    }
    body.invocationHistory = n;
  }
  const d = whole(form.days);
  if (d !== current.invocationHistoryDays) {
    if (d === undefined || d < 1 || d > MAX_INVOCATION_HISTORY_DAYS) return { body: null, problem: `Keep invocations for 1 to ${MAX_INVOCATION_HISTORY_DAYS} days.` };
    body.invocationHistoryDays = d;
  }
  return { body: Object.keys(body).length ? body : null, problem: null };
}
