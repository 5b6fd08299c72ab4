// Who may call this Kiln and over what: the token store, the access policy
// both transports share, and the TLS material when TLS is on. Built once at
// engine start from the config; every problem is one actionable line.
import { createSecureContext } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AccessPolicy } from '../auth/access-policy';
import { TokenStore } from '../auth/tokens';
import { tlsEnabled, type KilnConfig } from '../config';
import { ensureTlsMaterial, localSubjectAltNames } from '../tls/certificates';

export const TOKENS_FILE = 'tokens.json';
export const TLS_DIR = 'tls';

export interface TransportTls {
  certPem: string;
  keyPem: string;
  /** Kiln's own CA: clients trust it with --tls_certificate; it also signs client certificates. */
  kilnCaPath: string;
  kilnCaPem: string;
  /** The user's tls-cert instead of one from Kiln's CA. */
  userCertificate: boolean;
  certPath: string;
  keyPath: string;
  /** Files whose CAs may sign client certificates (Kiln's, then tls-client-ca). */
  clientCaFiles: string[];
  clientCaPems: string[];
}

export interface Access {
  tokens: TokenStore;
  policy: AccessPolicy;
  tls?: TransportTls;
}

export function tokenStorePath(dataDir: string): string {
  return join(dataDir, TOKENS_FILE);
}

export function kilnCaPath(dataDir: string): string {
  return join(dataDir, TLS_DIR, 'ca.pem');
}

/** `dashboardToken` (the http-token) is accepted on both transports, like any stored token. */
export function prepareAccess(config: KilnConfig, dashboardToken: string): Access {
  const tokens = new TokenStore(tokenStorePath(config.dataDir));
  const tls = tlsEnabled(config) ? prepareTls(config) : undefined;
  const policy = new AccessPolicy({
    tokens,
    requireTokenOnLoopback: config.requireTokenOnLoopback,
    clientCa: tls?.clientCaPems.flatMap(parseCertificates),
    extraToken: () => dashboardToken,
  });
  return { tokens, policy, tls };
}

function prepareTls(config: KilnConfig): TransportTls {
  const wildcard = config.host === '0.0.0.0' || config.host === '::';
  // Kiln's CA always exists in TLS mode: it signs client certificates even when the server certificate is the user's.
  const own = ensureTlsMaterial(join(config.dataDir, TLS_DIR), localSubjectAltNames(wildcard ? [] : [config.host]));
  let certPem = own.certPem;
  let keyPem = own.keyPem;
  let certPath = own.certPath;
  let keyPath = own.keyPath;
  // config-load guarantees tls-cert and tls-key come together.
  const userCertificate = config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined;
  if (userCertificate) {
    certPath = config.tlsCertFile!;
    keyPath = config.tlsKeyFile!;
    certPem = readSetting('tls-cert', certPath);
    keyPem = readSetting('tls-key', keyPath);
    try {
      createSecureContext({ cert: certPem, key: keyPem });
    } catch (err) {
      throw new Error(`tls-cert ${certPath} and tls-key ${keyPath} cannot be used together: ${(err as Error).message}`);
    }
  }
  const clientCaFiles = [own.caPath];
  const clientCaPems = [own.caCertPem];
  if (config.tlsClientCaFile !== undefined) {
    const pem = readSetting('tls-client-ca', config.tlsClientCaFile);
    if (parseCertificates(pem).length === 0) {
      throw new Error(`tls-client-ca ${config.tlsClientCaFile} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)`);
    }
    clientCaFiles.push(config.tlsClientCaFile);
    clientCaPems.push(pem);
  }
  return { certPem, keyPem, certPath, keyPath, kilnCaPath: own.caPath, kilnCaPem: own.caCertPem, userCertificate, clientCaFiles, clientCaPems };
}

function readSetting(key: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${key} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Every certificate in a PEM bundle; unparsable blocks are an error naming the problem. */
export function parseCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new Error(`a certificate in the client CA bundle cannot be parsed: ${(err as Error).message}`);
    }
  });
}
