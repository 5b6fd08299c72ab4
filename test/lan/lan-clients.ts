// Small clients for LAN tests: one Capabilities call with optional TLS and
// token, and HTTPS requests that trust a given CA.
import * as grpc from '@grpc/grpc-js';
import { request } from 'node:https';
import { clients } from '../../engine/grpc/services';

/** The gRPC status of a GetCapabilities call (OK when served). */
export function capabilitiesStatus(target: string, creds: grpc.ChannelCredentials, token?: string): Promise<{ code: grpc.status; details: string }> {
  const client = new clients.Capabilities(target, creds) as unknown as {
    getCapabilities(req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void): void;
    close(): void;
  };
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => {
    client.getCapabilities({}, md, { deadline: Date.now() + 30_000 }, (err) => {
      client.close();
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' });
    });
  });
}

export interface HttpsReply {
  status: number;
  body: string;
  json<T = any>(): T;
}

export function httpsCall(url: string, opts: { ca?: string; token?: string; method?: string; body?: unknown } = {}): Promise<HttpsReply> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (payload) headers['Content-Type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers, ca: opts.ca, timeout: 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, json: () => JSON.parse(body) }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url}`)));
    req.end(payload);
  });
}
