import { describe, expect, it } from 'vitest';
import { ApiFailure, KilnApi } from './api';

function recorder(response: () => Response | Promise<Response>) {
  const calls: { url: string; init: RequestInit }[] = [];
  const f = (async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return response();
  }) as unknown as typeof fetch;
  return { f, calls };
}

describe('KilnApi', () => {
  it('builds list queries from the filter', async () => {
    const { f, calls } = recorder(() => Response.json({ items: [], total: 0 }));
    await new KilnApi('', f).actions({ state: 'running', outcome: 'all', q: 'gcc' }, { limit: 50 });
    expect(calls[0].url).toBe('/api/actions?state=running&q=gcc&limit=50');
  });

  it('sends the bearer token on writes', async () => {
    const { f, calls } = recorder(() => Response.json({ executing: false }));
    const res = await new KilnApi('', f, () => 'tok').setExecution(false);
    expect(res.executing).toBe(false);
    const h = new Headers(calls[0].init.headers);
    expect(h.get('authorization')).toBe('Bearer tok');
    expect(calls[0].init.method).toBe('POST');
    expect(calls[0].init.body).toBe('{"enabled":false}');
  });

  it('surfaces the server error message', async () => {
    const { f } = recorder(() => Response.json({ error: { code: 16, status: 'UNAUTHENTICATED', message: 'bad token' } }, { status: 401 }));
    await expect(new KilnApi('', f).setExecution(true)).rejects.toMatchObject({ httpStatus: 401, message: 'bad token' });
  });

  it('explains a refusal without a JSON body', async () => {
    const { f } = recorder(() => new Response('nope', { status: 403 }));
    await expect(new KilnApi('', f).status()).rejects.toMatchObject({ message: 'The engine refused the token.' });
  });

  it('marks network failures as unreachable', async () => {
    const f = (async () => {
      throw new TypeError('fetch failed');
    }) as unknown as typeof fetch;
    const err = await new KilnApi('', f).status().catch((e) => e);
    expect(err).toBeInstanceOf(ApiFailure);
    expect(err.unreachable).toBe(true);
  });

  it('encodes ids and follow lists', () => {
    const api = new KilnApi('http://h');
    expect(api.eventsUrl([])).toBe('http://h/api/events');
    expect(api.eventsUrl(['a/b', 'c'])).toBe('http://h/api/events?follow=a%2Fb,c');
  });
});
