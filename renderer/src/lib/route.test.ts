import { describe, expect, it } from 'vitest';
import { formatRoute, parseRoute, type Route } from './route';

describe('hash routes', () => {
  it('reads views, invocation pages and open actions', () => {
    expect(parseRoute('')).toEqual({ view: 'overview' });
    expect(parseRoute('#/cache')).toEqual({ view: 'cache' });
    expect(parseRoute('#/invocations')).toEqual({ view: 'invocations' });
    expect(parseRoute('#/invocations/3f2a-9c')).toEqual({ view: 'invocations', invocation: '3f2a-9c' });
    expect(parseRoute('#/actions/op-7')).toEqual({ view: 'actions', action: 'op-7' });
    expect(parseRoute('#/invocations/inv%2F1/actions/op-7')).toEqual({ view: 'invocations', invocation: 'inv/1', action: 'op-7' });
    expect(parseRoute('#/workers/actions/op-2')).toEqual({ view: 'workers', action: 'op-2' });
  });

  it('leaves a #token= fragment and nonsense on the overview', () => {
    expect(parseRoute('#token=abc')).toEqual({ view: 'overview' });
    expect(parseRoute('#/nowhere/x')).toEqual({ view: 'overview' });
    expect(parseRoute('#/actions/%E0%A4%A')).toEqual({ view: 'overview' });
  });

  it('writes what it reads', () => {
    const routes: Route[] = [
      { view: 'overview' },
      { view: 'invocations', invocation: 'a b/c' },
      { view: 'invocations', invocation: 'x', action: 'op 1' },
      { view: 'actions', action: 'op-1' },
      { view: 'workers', action: 'op-9' },
    ];
    for (const r of routes) expect(parseRoute(formatRoute(r))).toEqual(r);
    expect(formatRoute({ view: 'actions', action: 'op-1' })).toBe('#/actions/op-1');
  });
});
