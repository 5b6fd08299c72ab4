// The dashboard's bearer token: generated at first start, kept in
// {dataDir}/http-token (0600) so the CLI can print it and Electron can hand it
// to its window. Off-loopback requests always need it; loopback needs it for
// writes (and for everything when requireTokenOnLoopback is set).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AccessPolicy } from '../auth/access-policy';
import { isLoopbackAddress } from '../common/loopback';

export const TOKEN_FILE = 'http-token';

/** Reads the token, creating it (mode 0600) when missing or empty. */
export function loadOrCreateToken(dataDir: string): string {
  const path = join(dataDir, TOKEN_FILE);
  try {
    const existing = readFileSync(path, 'utf8').trim();
    if (existing) return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true });
  const token = randomBytes(24).toString('base64url');
  // 'wx' so two starting processes never overwrite each other's token.
  try {
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(path, 'utf8').trim();
    throw err;
  }
  chmodSync(path, 0o600);
  return token;
}

export interface AuthPolicy {
  token: string;
  requireTokenOnLoopback: boolean;
  /** Tests: treat loopback peers as remote to exercise the LAN rule. */
  treatLoopbackAsRemote?: boolean;
}

export type AuthResult = { ok: true } | { ok: false; reason: string };

/**
 * The same decision gRPC gets from the AccessPolicy (any stored token, the
 * dashboard token, a client certificate), plus: loopback writes need a token.
 */
export function checkAccess(req: IncomingMessage, policy: AccessPolicy, treatLoopbackAsRemote = false): AuthResult {
  const header = req.headers.authorization;
  const socket = req.socket as Partial<TLSSocket>;
  const cert = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  const decision = policy.check(
    {
      // TEST-NET-1: a label, never contacted.
      peer: treatLoopbackAsRemote ? '192.0.2.1' : (req.socket.remoteAddress ?? ''),
      authorization: header,
      clientCertificate: cert?.raw,
      write: req.method !== 'GET' && req.method !== 'HEAD',
    },
    true,
  );
  if (decision.allowed) return { ok: true };
  if (!header) return { ok: false, reason: 'missing Authorization header (expected "Bearer <token>")' };
  return { ok: false, reason: decision.reason };
}

export function checkAuth(req: IncomingMessage, policy: AuthPolicy): AuthResult {
  const loopback = !policy.treatLoopbackAsRemote && isLoopbackAddress(req.socket.remoteAddress);
  const isRead = req.method === 'GET' || req.method === 'HEAD';
  if (loopback && isRead && !policy.requireTokenOnLoopback) return { ok: true };
  const header = req.headers.authorization;
  if (!header) return { ok: false, reason: 'missing Authorization header (expected "Bearer <token>")' };
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return { ok: false, reason: 'Authorization header is not "Bearer <token>"' };
  const given = Buffer.from(m[1]);
  const want = Buffer.from(policy.token);
  if (given.length !== want.length || !timingSafeEqual(given, want)) return { ok: false, reason: 'wrong token' };
  return { ok: true };
}

/**
 * Short-lived, single-use tickets for GET /api/events. EventSource cannot send an
 * Authorization header, so a browser that needs a token first POSTs /api/session
 * with it and opens the stream with ?ticket=… instead. A ticket is random (never
 * derived from the token), kept only as its SHA-256, good for one stream and
 * `ttlMs`, and useless on any other endpoint.
 */
export class EventTickets {
  private readonly live = new Map<string, number>();

  constructor(
    private readonly ttlMs = 30_000,
    private readonly max = 1_000,
    private readonly now: () => number = Date.now,
  ) {}

  issue(): { ticket: string; expiresInMs: number } {
    this.prune();
    // Bounded: a client looping on POST /api/session drops the oldest tickets, never grows memory.
    while (this.live.size >= this.max) this.live.delete(this.live.keys().next().value as string);
    const ticket = `kev_${randomBytes(32).toString('base64url')}`;
    this.live.set(digestOf(ticket), this.now() + this.ttlMs);
    return { ticket, expiresInMs: this.ttlMs };
  }

  /** True once for a ticket that was issued and has not expired; it is spent either way. */
  redeem(ticket: string): boolean {
    const key = digestOf(ticket);
    const expires = this.live.get(key);
    this.live.delete(key);
    return expires !== undefined && expires > this.now();
  }

  get size(): number {
    this.prune();
    return this.live.size;
  }

  private prune(): void {
    const t = this.now();
    for (const [k, exp] of this.live) if (exp <= t) this.live.delete(k);
  }
}

function digestOf(ticket: string): string {
  return createHash('sha256').update(ticket).digest('base64url');
}
