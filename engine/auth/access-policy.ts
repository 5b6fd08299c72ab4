// Who may call Kiln. Loopback callers are trusted unless the operator asks
// otherwise; anyone else must present a token (or a client certificate signed
// by Kiln's CA), because executing a stranger's command is remote code execution.
import { X509Certificate, timingSafeEqual } from 'node:crypto';
import { isLoopbackAddress } from '../common/loopback';
import { bearerToken, type TokenStore } from './tokens';

export type AccessDecision = { allowed: true; principal: string } | { allowed: false; reason: string };

export interface AccessRequest {
  /** Peer address as grpc-js or node's http report it. */
  peer: string;
  /** The raw `authorization` header value, if any. */
  authorization?: string;
  /** DER of the client certificate presented over TLS, if any. */
  clientCertificate?: Buffer;
  /** A write (POST, execution toggle): loopback needs a token for these too when `tokenForLoopbackWrites`. */
  write?: boolean;
}

export interface AccessPolicyOptions {
  tokens: TokenStore;
  /** Demand a token (or certificate) from loopback callers too. */
  requireTokenOnLoopback?: boolean;
  /** Trust client certificates issued by this CA, or any of these (mTLS instead of tokens). */
  clientCa?: X509Certificate | X509Certificate[];
  /** Extra token accepted everywhere (the dashboard's own token). */
  extraToken?: () => string | undefined;
}

export class AccessPolicy {
  constructor(private readonly opts: AccessPolicyOptions) {}

  /**
   * True when every caller that can reach a server listening on `host` is admitted
   * without credentials (loopback only, no token asked of loopback callers), so a
   * transport may leave the per-call check out. Reads (`write` unset) only.
   */
  admitsEveryoneOn(host: string): boolean {
    return isLoopbackAddress(host) && !this.opts.requireTokenOnLoopback;
  }

  check(req: AccessRequest, tokenForLoopbackWrites = false): AccessDecision {
    const loopback = isLoopbackAddress(req.peer);
    const needed = !loopback || this.opts.requireTokenOnLoopback || (req.write && tokenForLoopbackWrites);
    if (!needed) return { allowed: true, principal: 'loopback' };

    const cert = req.clientCertificate && this.certificatePrincipal(req.clientCertificate);
    if (cert) return { allowed: true, principal: cert };

    const token = bearerToken(req.authorization);
    if (!token) {
      return {
        allowed: false,
        reason: req.authorization
          ? 'the authorization header is not of the form "Bearer TOKEN"'
          : 'this Kiln requires an access token: pass --remote_header=authorization="Bearer TOKEN" (make one with `kiln token add NAME` or in the dashboard)',
      };
    }
    const extra = this.opts.extraToken?.();
    if (extra && safeEqual(extra, token)) return { allowed: true, principal: 'dashboard' };
    const name = this.opts.tokens.verify(token);
    if (name) return { allowed: true, principal: `token:${name}` };
    return { allowed: false, reason: 'the access token is unknown or was revoked' };
  }

  private certificatePrincipal(der: Buffer): string | undefined {
    const cas = this.opts.clientCa === undefined ? [] : ([] as X509Certificate[]).concat(this.opts.clientCa);
    if (cas.length === 0) return undefined;
    try {
      const cert = new X509Certificate(der);
      const now = Date.now();
      if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) return undefined;
      if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) return undefined;
      return `cert:${cert.subject.replace(/\n/g, ',')}`;
    } catch {
      return undefined;
    }
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
