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

  it('asks for the largest blobs with a limit', async () => {
    const body = { items: [{ hash: 'ab', size: 3, fn: 'sha256' }], storeBytes: 10, at: 1 };
    const { f, calls } = recorder(() => Response.json(body));
    const api = new KilnApi('http://h', f);
    expect(await api.largestBlobs()).toEqual(body);
    await api.largestBlobs(5);
    expect(calls.map((c) => c.url)).toEqual(['http://h/api/cache/largest?limit=20', 'http://h/api/cache/largest?limit=5']);
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
    expect(api.eventsUrl(['a'], 'kev_x+y')).toBe('http://h/api/events?follow=a&ticket=kev_x%2By');
    expect(api.eventsUrl([], 'kev_1')).toBe('http://h/api/events?ticket=kev_1');
    expect(api.caUrl).toBe('http://h/api/tls/ca.pem');
  });

  it('talks to the LAN endpoints with the token', async () => {
    const { f, calls } = recorder(() => Response.json({}));
    const api = new KilnApi('', f, () => 'tok');
    await api.setLan(true);
    await api.createToken('alice');
    await api.revokeToken('a b');
    await api.connect(true);
    await api.connect();
    await api.eventTicket();
    expect(calls.map((c) => `${c.init.method ?? 'GET'} ${c.url} ${c.init.body ?? ''}`.trim())).toEqual([
      'PUT /api/settings {"lan":true}',
      'POST /api/tokens {"name":"alice"}',
      'DELETE /api/tokens/a%20b',
      'POST /api/connect',
      'GET /api/connect',
      'POST /api/session',
    ]);
    for (const c of calls) expect(new Headers(c.init.headers).get('authorization')).toBe('Bearer tok');
  });
});
