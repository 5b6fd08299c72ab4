// LAN mode serves the dashboard over HTTPS with a certificate from Kiln's own CA
// ({dataDir}/tls/ca.pem), which Chromium does not trust. The window trusts exactly
// that CA, and only for the engine's own origin (scheme, host and port): any other
// site, or a certificate that does not chain to Kiln's CA, is refused as usual.
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { AppLike } from './electron-like';

/** True when `leafPem` (the server's certificate) is signed by `caPem`, current, and names the URL's host. */
export function chainsToKilnCa(leafPem: string, caPem: string, host: string, now = new Date()): boolean {
  let leaf: X509Certificate;
  let ca: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
    ca = new X509Certificate(caPem);
  } catch {
    return false;
  }
  if (!ca.ca || !leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return false;
  for (const c of [leaf, ca]) {
    if (now < new Date(c.validFrom) || now > new Date(c.validTo)) return false;
  }
  const bare = host.replace(/^\[|\]$/g, '');
  return (isIP(bare) ? leaf.checkIP(bare) : leaf.checkHost(bare)) !== undefined;
}

/**
 * Decides a Chromium certificate error: trusted only for `origin` and a certificate chaining
 * to `caPem`. Electron hands over only the leaf (certificate.data, PEM) — that is all we need,
 * since Kiln's CA signs the server certificate directly.
 */
export function kilnCertificateDecision(origin: string, caPem: string, now?: () => Date): (url: string, certificatePem: string) => boolean {
  return (url, certificatePem) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return false;
    }
    if (u.protocol !== 'https:' || u.origin !== origin) return false;
    return chainsToKilnCa(certificatePem, caPem, u.hostname, now?.());
  };
}

/** Installs the decision on the app's certificate-error event (Chromium's own checks run first). */
export function trustKilnCa(app: Pick<AppLike, 'on'>, origin: string, caPem: string): void {
  const trusted = kilnCertificateDecision(origin, caPem);
  app.on('certificate-error', (event, _webContents, url, _error, certificate, callback) => {
    if (trusted(url, certificate.data)) {
      event.preventDefault(); // without this Electron rejects whatever the callback says
      callback(true);
    } else {
      callback(false);
    }
  });
}
