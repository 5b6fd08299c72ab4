// The auth interceptor and Kiln's own CA, through real grpc-js calls on loopback.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessPolicy } from '../../engine/auth/access-policy';
import { grpcAuthInterceptor } from '../../engine/auth/grpc-auth';
import { TokenStore } from '../../engine/auth/tokens';
import { CapabilitiesService, clients } from '../../engine/grpc/services';
import { reapi } from '../../engine/proto';
import { ensureTlsMaterial, issueClientCertificate } from '../../engine/tls/certificates';
import { tlsServerCredentials } from '../../engine/tls/server-credentials';

const dir = mkdtempSync(join(tmpdir(), 'kiln-tls-'));
const tokens = new TokenStore(join(dir, 'tokens.json'));
const rejections: string[] = [];
let server: grpc.Server;
let port = 0;
let tls: ReturnType<typeof ensureTlsMaterial>;

beforeAll(async () => {
  tls = ensureTlsMaterial(join(dir, 'tls'), ['localhost', '127.0.0.1']);
  const policy = new AccessPolicy({ tokens, requireTokenOnLoopback: true, clientCa: new X509Certificate(tls.caCertPem) });
  server = new grpc.Server({ interceptors: [grpcAuthInterceptor(policy, (reason) => rejections.push(reason))] });
  server.addService(CapabilitiesService, {
    getCapabilities: (_call: unknown, cb: grpc.sendUnaryData<reapi.ServerCapabilities>) =>
      cb(null, reapi.ServerCapabilities.create({ lowApiVersion: { major: 2 } })),
  });
  const creds = tlsServerCredentials({ certFile: tls.certPath, keyFile: tls.keyPath, clientCaFile: tls.caPath });
  port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? rej(e) : res(p))));
});

afterAll(() => server?.forceShutdown());

function call(creds: grpc.ChannelCredentials, token?: string): Promise<grpc.status> {
  const client = new clients.Capabilities(`127.0.0.1:${port}`, creds) as unknown as {
    getCapabilities(req: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void): void;
    close(): void;
  };
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => {
    client.getCapabilities({}, md, (err) => {
      client.close();
      resolve(err ? err.code : grpc.status.OK);
    });
  });
}

const trusting = () => grpc.credentials.createSsl(Buffer.from(tls.caCertPem));

describe('LAN access over TLS', () => {
  it('completes the TLS handshake for a client that trusts the generated CA, and rejects one that does not', async () => {
    const token = tokens.add('tls-client');
    expect(await call(trusting(), token)).toBe(grpc.status.OK);
    // No custom root: the system store does not know Kiln's CA, so the handshake fails.
    expect(await call(grpc.credentials.createSsl(), token)).toBe(grpc.status.UNAVAILABLE);
  });

  it('answers UNAUTHENTICATED without a token or with a revoked one, and serves a valid one', async () => {
    const token = tokens.add('revocable');
    const before = rejections.length;
    expect(await call(trusting())).toBe(grpc.status.UNAUTHENTICATED);
    expect(await call(trusting(), 'kiln_not-a-real-token')).toBe(grpc.status.UNAUTHENTICATED);
    expect(await call(trusting(), token)).toBe(grpc.status.OK);
    tokens.revoke('revocable');
    expect(await call(trusting(), token)).toBe(grpc.status.UNAUTHENTICATED);
    expect(rejections.length - before).toBe(3);
  });

  it('accepts a client certificate issued by Kiln’s CA instead of a token (mTLS)', async () => {
    const client = issueClientCertificate(join(dir, 'tls'), 'build-box');
    const mtls = grpc.credentials.createSsl(Buffer.from(tls.caCertPem), Buffer.from(client.keyPem), Buffer.from(client.certPem));
    expect(await call(mtls)).toBe(grpc.status.OK);
  });
});
