// Hash routes, so every view, invocation and action has a URL that can be
// pasted or shared: #/invocations, #/invocations/ID, #/actions/ID, and an open
// action on any view as …/actions/ID (#/invocations/INV/actions/ACT). The
// fragment stays client-side, like the #token=… Electron hands over (which is
// not a route and is left alone here).

export const VIEWS = ['overview', 'workers', 'invocations', 'actions', 'cache', 'connect', 'settings'] as const;
export type ViewName = (typeof VIEWS)[number];

export interface Route {
  view: ViewName;
  /** The invocation page (view 'invocations'). */
  invocation?: string;
  /** The action open in the drawer. */
  action?: string;
}

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#\/?/, '');
  if (path.includes('=')) return { view: 'overview' }; // a #token=… fragment, not a route
  let parts: string[];
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return { view: 'overview' };
  }
  const view = (VIEWS as readonly string[]).includes(parts[0]) ? (parts[0] as ViewName) : 'overview';
  const route: Route = { view };
  let rest = parts.slice(1);
  if (view === 'invocations' && rest[0] && rest[0] !== 'actions') {
    route.invocation = rest[0];
    rest = rest.slice(1);
  }
  if (view === 'actions' && rest[0]) route.action = rest[0];
  else if (rest[0] === 'actions' && rest[1]) route.action = rest[1];
  return route;
}

export function formatRoute(r: Route): string {
  const enc = encodeURIComponent;
  let path = `#/${r.view}`;
  if (r.view === 'invocations' && r.invocation) path += `/${enc(r.invocation)}`;
  if (r.action) path += r.view === 'actions' ? `/${enc(r.action)}` : `/actions/${enc(r.action)}`;
  return path;
}

export const invocationHref = (id: string) => formatRoute({ view: 'invocations', invocation: id });
export const actionHref = (id: string) => formatRoute({ view: 'actions', action: id });
