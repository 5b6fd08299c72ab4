// A real Engine with --require-token and TLS on loopback: both transports share
// one AccessPolicy over {dataDir}/tokens.json, and the HTTP LAN endpoints work.
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestEngine, type TestEngine } from '../helpers';
import { capabilitiesStatus, httpsCall } from './lan-clients';

let t: TestEngine;
let ca: string;
let target: string;
let api: string;
const trusting = () => grpc.credentials.createSsl(Buffer.from(ca));

beforeAll(async () => {
  t = await startTestEngine({ config: { requireTokenOnLoopback: true, tls: 'on' } });
  ca = readFileSync(join(t.dataDir, 'tls', 'ca.pem'), 'utf8');
  target = `127.0.0.1:${t.engine.grpcPort}`;
  api = t.engine.httpUrl.replace(/\/$/, '');
}, 120_000);
afterAll(() => t?.stop());

describe('gRPC with require-token over TLS', () => {
  it('says grpcs:// and https:// and reports TLS in /api/status', async () => {
    expect(t.engine.grpcUrl).toBe(`grpcs://127.0.0.1:${t.engine.grpcPort}`);
    expect(t.engine.httpUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    const status = (await httpsCall(`${api}/api/status`, { ca, token: t.engine.httpToken })).json();
    expect(status).toMatchObject({ tls: true, tokenRequiredOnLoopback: true, grpcUrl: t.engine.grpcUrl });
  });

  it('refuses no token and a revoked one, serves a valid one, and counts the refusals', async () => {
    const metrics = async () => (await httpsCall(`${api}/api/metrics`, { ca, token: t.engine.httpToken })).json().authRejections as number;
    const before = await metrics();
    const token = t.engine.access.tokens.add('alice');

    const none = await capabilitiesStatus(target, trusting());
    expect(none.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(none.details).toMatch(/kiln token add/);
    expect((await capabilitiesStatus(target, trusting(), token)).code).toBe(grpc.status.OK);
    // The dashboard's token is accepted on gRPC too.
    expect((await capabilitiesStatus(target, trusting(), t.engine.httpToken)).code).toBe(grpc.status.OK);

    expect(t.engine.access.tokens.revoke('alice')).toBe(true);
    expect((await capabilitiesStatus(target, trusting(), token)).code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await metrics()) - before).toBe(2);
  });

  it('completes the handshake only for clients that trust Kiln’s CA', async () => {
    const token = t.engine.access.tokens.add('handshake');
    expect((await capabilitiesStatus(target, trusting(), token)).code).toBe(grpc.status.OK);
    expect((await capabilitiesStatus(target, grpc.credentials.createSsl(), token)).code).toBe(grpc.status.UNAVAILABLE);
    expect((await capabilitiesStatus(target, grpc.credentials.createInsecure(), token)).code).not.toBe(grpc.status.OK);
  });
});

describe('the dashboard over HTTPS', () => {
  it('answers 401 JSON without a token, 200 with a stored token or the dashboard token, and counts refusals', async () => {
    const before = t.engine.metrics.snapshot().authRejections;
    const refused = await httpsCall(`${api}/api/status`, { ca });
    expect(refused.status).toBe(401);
    expect(refused.json().error).toMatchObject({ status: 'UNAUTHENTICATED' });
    expect(refused.json().error.message).toMatch(/kiln token add/);
    expect((await httpsCall(`${api}/api/status`, { ca, token: 'kiln_wrong' })).status).toBe(401);
    const token = t.engine.access.tokens.add('browser');
    expect((await httpsCall(`${api}/api/status`, { ca, token })).status).toBe(200);
    expect((await httpsCall(`${api}/api/status`, { ca, token: t.engine.httpToken })).status).toBe(200);
    expect(t.engine.metrics.snapshot().authRejections - before).toBe(2);
  });

  it('rejects a client that does not trust the CA', async () => {
    await expect(httpsCall(`${api}/api/status`, { token: t.engine.httpToken })).rejects.toThrow(/certificate/);
  });

  it('serves Kiln’s CA without a token', async () => {
    const r = await httpsCall(`${api}/api/tls/ca.pem`, { ca });
    expect(r.status).toBe(200);
    expect(r.body).toBe(ca);
  });

  it('makes, lists and revokes tokens, and gRPC follows at once', async () => {
    const token = t.engine.httpToken;
    expect((await httpsCall(`${api}/api/tokens`, { ca, method: 'POST', body: { name: 'nope' } })).status).toBe(401);
    const made = await httpsCall(`${api}/api/tokens`, { ca, token, method: 'POST', body: { name: 'ci-box' } });
    expect(made.status).toBe(201);
    const created = made.json();
    expect(created).toMatchObject({ name: 'ci-box', bazelFlag: `--remote_header=authorization="Bearer ${created.token}"` });
    expect((await httpsCall(`${api}/api/tokens`, { ca, token, method: 'POST', body: { name: 'ci-box' } })).status).toBe(409);
    expect((await httpsCall(`${api}/api/tokens`, { ca, token, method: 'POST', body: { name: 'bad name' } })).status).toBe(400);

    const list = (await httpsCall(`${api}/api/tokens`, { ca, token })).json();
    expect(list.tokens.map((x: { name: string }) => x.name)).toContain('ci-box');
    expect(JSON.stringify(list)).not.toContain(created.token);
    expect((await capabilitiesStatus(target, trusting(), created.token)).code).toBe(grpc.status.OK);

    expect((await httpsCall(`${api}/api/tokens/ci-box`, { ca, token, method: 'DELETE' })).json()).toEqual({ revoked: 'ci-box' });
    expect((await httpsCall(`${api}/api/tokens/ci-box`, { ca, token, method: 'DELETE' })).status).toBe(404);
    expect((await capabilitiesStatus(target, trusting(), created.token)).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('gives the .bazelrc lines, with a fresh working token on POST', async () => {
    const token = t.engine.httpToken;
    const endpoint = `grpcs://127.0.0.1:${t.engine.grpcPort}`;
    const caPath = join(t.dataDir, 'tls', 'ca.pem');
    const shown = (await httpsCall(`${api}/api/connect`, { ca, token })).json();
    expect(shown).toMatchObject({ endpoint, tls: true, caUrl: '/api/tls/ca.pem', caPath });
    expect(shown.bazelrc).toEqual([
      `build --remote_executor=${endpoint}`,
      `build --tls_certificate=${caPath}`,
      'build --remote_header=authorization="Bearer TOKEN"',
    ]);
    const made = await httpsCall(`${api}/api/connect`, { ca, token, method: 'POST' });
    expect(made.status).toBe(201);
    const info = made.json();
    expect(info.token.name).toMatch(/^connect-\d{8}-\d{6}/);
    expect(info.bazelrc[2]).toBe(`build --remote_header=authorization="Bearer ${info.token.token}"`);
    expect((await capabilitiesStatus(target, trusting(), info.token.token)).code).toBe(grpc.status.OK);
  });

  it('saves the LAN switch in settings.json and says it applies on restart', async () => {
    const token = t.engine.httpToken;
    expect((await httpsCall(`${api}/api/settings`, { ca, token })).json()).toMatchObject({ lan: false, lanActive: false, restartRequired: false });
    expect((await httpsCall(`${api}/api/settings`, { ca, method: 'PUT', body: { lan: true } })).status).toBe(401);
    expect((await httpsCall(`${api}/api/settings`, { ca, token, method: 'PUT', body: { lan: 'yes' } })).status).toBe(400);
    const saved = await httpsCall(`${api}/api/settings`, { ca, token, method: 'PUT', body: { lan: true } });
    expect(saved.json()).toMatchObject({ lan: true, lanActive: false, restartRequired: true });
    expect(saved.json().message).toMatch(/restart/);
    expect(JSON.parse(readFileSync(join(t.dataDir, 'settings.json'), 'utf8'))).toEqual({ lan: true });
  });
});
