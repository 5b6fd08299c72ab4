// The Workers view's remote capacity: the upstream and each peer Kiln as one
// row each (reachable, slots, our actions running there, round trip), and how
// an action's detail says where it ran.
import type { ApiStatus } from '../../../engine/common/api-types';

export interface RemoteRow {
  key: string;
  kind: 'upstream' | 'peer';
  name: string;
  url: string;
  /** "reachable", "unreachable — why", "not contacted yet", "paused", … */
  state: string;
  ok: boolean;
  slots?: number;
  running?: number;
  roundTripMs?: number;
  /** Its farm mode, when a peer reports one. */
  mode?: string;
}

export function remoteRows(status: Pick<ApiStatus, 'upstream' | 'peers'> | undefined): RemoteRow[] {
  const rows: RemoteRow[] = [];
  const up = status?.upstream;
  if (up) {
    rows.push({
      key: 'upstream',
      kind: 'upstream',
      name: 'Upstream',
      url: up.url,
      state: reach(up.reachable, up.problem),
      ok: up.reachable !== false,
      slots: up.slots,
      running: up.running,
      roundTripMs: up.roundTripMs,
    });
  }
  for (const p of status?.peers ?? []) {
    const busy = p.reachable && p.slots === 0 && p.problem ? `takes nothing now — ${p.problem}` : undefined;
    rows.push({
      key: p.url,
      kind: 'peer',
      name: p.name.replace(/^peer:/, ''),
      url: p.url,
      state: busy ?? reach(p.reachable, p.problem),
      ok: p.reachable === true && !busy,
      slots: p.slots,
      running: p.running,
      roundTripMs: p.roundTripMs,
      mode: p.mode,
    });
  }
  return rows;
}

function reach(reachable: boolean | undefined, problem: string | undefined): string {
  if (reachable === false) return `unreachable${problem ? ` — ${problem}` : ''}`;
  return reachable ? 'reachable' : 'not contacted yet';
}

/** "on this machine", "on the upstream cluster", "on peer desk-2". */
export function ranOnText(ranOn: string): string {
  if (ranOn === 'local') return 'on this machine';
  if (ranOn === 'upstream') return 'on the upstream cluster';
  if (ranOn.startsWith('peer:')) return `on peer ${ranOn.slice('peer:'.length)}`;
  return `on ${ranOn}`;
}
