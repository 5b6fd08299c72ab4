// Kiln's own certificate authority for LAN mode: made once, kept in the data
// folder, and used to sign a server certificate for this machine's names and
// addresses (re-issued when they change or it nears expiry). Keys come from
// node's crypto; node-forge builds and signs the X.509 structures.
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';
import { writeFileAtomicSync } from '../util/atomic-file';

export interface TlsMaterial {
  caCertPem: string;
  certPem: string;
  keyPem: string;
  /** The names and addresses the server certificate covers. */
  subjectAltNames: string[];
  caPath: string;
  certPath: string;
  keyPath: string;
}

const DAY = 86_400_000;

/** Host names and addresses this machine answers to, for the server certificate. */
export function localSubjectAltNames(extra: string[] = []): string[] {
  const names = new Set<string>(['localhost', '127.0.0.1', '::1', hostname()]);
  for (const list of Object.values(networkInterfaces())) {
    for (const ni of list ?? []) if (!ni.internal) names.add(ni.address.split('%')[0]);
  }
  for (const e of extra) if (e) names.add(e);
  return [...names].sort();
}

export function ensureTlsMaterial(dir: string, subjectAltNames = localSubjectAltNames(), now = Date.now()): TlsMaterial {
  const caKeyPath = join(dir, 'ca-key.pem');
  const caPath = join(dir, 'ca.pem');
  const keyPath = join(dir, 'server-key.pem');
  const certPath = join(dir, 'server.pem');

  if (!existsSync(caPath) || !existsSync(caKeyPath)) {
    const ca = issue({ commonName: 'Kiln local CA', isCa: true, validDays: 3650, now });
    writeFileAtomicSync(caKeyPath, ca.keyPem, 0o600);
    writeFileAtomicSync(caPath, ca.certPem, 0o644);
  }
  const caCertPem = readFileSync(caPath, 'utf8');
  const caKeyPem = readFileSync(caKeyPath, 'utf8');

  if (!serverCertStillGood(certPath, keyPath, caCertPem, subjectAltNames, now)) {
    const server = issue({
      commonName: hostname(),
      isCa: false,
      validDays: 397,
      now,
      subjectAltNames,
      issuer: { certPem: caCertPem, keyPem: caKeyPem },
    });
    writeFileAtomicSync(keyPath, server.keyPem, 0o600);
    writeFileAtomicSync(certPath, server.certPem, 0o644);
  }
  return {
    caCertPem,
    certPem: readFileSync(certPath, 'utf8'),
    keyPem: readFileSync(keyPath, 'utf8'),
    subjectAltNames,
    caPath,
    certPath,
    keyPath,
  };
}

/** A client certificate signed by Kiln's CA, for mTLS instead of a token. */
export function issueClientCertificate(dir: string, name: string, now = Date.now()): { certPem: string; keyPem: string } {
  const caCertPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
  const caKeyPem = readFileSync(join(dir, 'ca-key.pem'), 'utf8');
  return issue({ commonName: name, isCa: false, clientAuth: true, validDays: 397, now, issuer: { certPem: caCertPem, keyPem: caKeyPem } });
}

function serverCertStillGood(certPath: string, keyPath: string, caPem: string, sans: string[], now: number): boolean {
  if (!existsSync(certPath) || !existsSync(keyPath)) return false;
  try {
    const cert = new X509Certificate(readFileSync(certPath));
    const ca = new X509Certificate(caPem);
    if (!cert.verify(ca.publicKey)) return false;
    if (Date.parse(cert.validTo) - now < 30 * DAY) return false;
    const covered = (cert.subjectAltName ?? '').split(', ').map((s) => s.replace(/^(DNS|IP Address):/, ''));
    return sans.every((n) => covered.includes(n) || covered.includes(expandIpv6(n)));
  } catch {
    return false;
  }
}

interface IssueOptions {
  commonName: string;
  isCa: boolean;
  clientAuth?: boolean;
  validDays: number;
  now: number;
  subjectAltNames?: string[];
  issuer?: { certPem: string; keyPem: string };
}

function issue(o: IssueOptions): { certPem: string; keyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  // A positive, random serial (first byte < 0x80 keeps the DER integer positive).
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = new Date(o.now - DAY);
  cert.validity.notAfter = new Date(o.now + o.validDays * DAY);
  const subject = [{ name: 'commonName', value: o.commonName }, { name: 'organizationName', value: 'Kiln' }];
  cert.setSubject(subject);

  const issuerCert = o.issuer ? forge.pki.certificateFromPem(o.issuer.certPem) : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : subject);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: o.isCa, critical: true },
    o.isCa
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (!o.isCa) extensions.push({ name: 'extKeyUsage', serverAuth: !o.clientAuth, clientAuth: !!o.clientAuth });
  if (o.subjectAltNames?.length) {
    extensions.push({
      name: 'subjectAltName',
      altNames: o.subjectAltNames.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })),
    });
  }
  cert.setExtensions(extensions);
  const signingKey = forge.pki.privateKeyFromPem(o.issuer?.keyPem ?? privateKey) as forge.pki.rsa.PrivateKey;
  cert.sign(signingKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: privateKey };
}

function expandIpv6(addr: string): string {
  if (isIP(addr) !== 6) return addr;
  // X509Certificate prints IPv6 SANs fully expanded without zero compression.
  const [head, tail = ''] = addr.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const mid = Array(8 - h.length - t.length).fill('0');
  return [...h, ...mid, ...t].map((p) => p.toUpperCase().replace(/^0+(?=.)/, '')).join(':');
}
