// The action list's filter: the same predicate runs client-side on live events
// and is sent to the server as query parameters for history pages.
import type { ActionOutcome, ActionState, ActionSummary } from '../../../engine/common/api-types';
import { ACTION_ROLE_LABELS, type ActionRole } from '../../../engine/common/action-role';

export interface ActionFilter {
  state: ActionState | 'all';
  outcome: ActionOutcome | 'all';
  q: string;
}

export const EMPTY_FILTER: ActionFilter = { state: 'all', outcome: 'all', q: '' };

export function isEmptyFilter(f: ActionFilter): boolean {
  return f.state === 'all' && f.outcome === 'all' && f.q.trim() === '';
}

/** What the search box matches: what a person would type to find an action. */
function haystack(a: ActionSummary): string {
  return [a.mnemonic, a.target, a.argv0, a.id, a.actionDigest, a.instance].filter(Boolean).join('\n').toLowerCase();
}

export function matchesFilter(a: ActionSummary, f: ActionFilter): boolean {
  if (f.state !== 'all' && a.state !== f.state) return false;
  if (f.outcome !== 'all') {
    // "cached" is both an outcome and a flag: an AC hit counts whichever way it's reported.
    const outcome = a.cached ? 'cached' : a.outcome;
    if (outcome !== f.outcome && a.outcome !== f.outcome) return false;
  }
  const terms = f.q.toLowerCase().split(/\s+/).filter(Boolean);
  if (terms.length) {
    const h = haystack(a);
    if (!terms.every((t) => h.includes(t))) return false;
  }
  return true;
}

export function filterQuery(f: ActionFilter, extra: { cursor?: string; limit?: number } = {}): string {
  const p = new URLSearchParams();
  if (f.state !== 'all') p.set('state', f.state);
  if (f.outcome !== 'all') p.set('outcome', f.outcome);
  if (f.q.trim()) p.set('q', f.q.trim());
  if (extra.cursor) p.set('cursor', extra.cursor);
  if (extra.limit) p.set('limit', String(extra.limit));
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** The label an action goes by: Bazel's mnemonic and target, else the program it runs. */
export function actionLabel(a: Pick<ActionSummary, 'mnemonic' | 'target' | 'argv0' | 'id'> & { role?: ActionRole }): { title: string; subtitle: string } {
  // A test's run and its test.xml step share mnemonic and label: say which one this is.
  const role = a.role ? ` · ${ACTION_ROLE_LABELS[a.role]}` : '';
  if (a.mnemonic || a.target) return { title: `${a.mnemonic ?? 'Action'}${role}`, subtitle: a.target ?? a.argv0 ?? '' };
  if (a.argv0) return { title: basename(a.argv0), subtitle: a.argv0 };
  return { title: 'Action', subtitle: a.id };
}

function basename(p: string): string {
  const parts = p.split(/[\\/]/);
  return parts[parts.length - 1] || p;
}
