// gRPC server credentials for LAN mode. Client certificates are *requested*
// but not required, so a client may authenticate with either a certificate
// signed by the client CA (mTLS) or a bearer token; the auth interceptor
// decides. grpc-js only offers request-but-don't-require through its
// certificate-provider API; our provider hands over the PEMs read at start.
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** CA (or CAs) whose client certificates are accepted instead of tokens. */
  clientCaFile?: string | string[];
}

type Provider = grpc.experimental.CertificateProvider;

function staticProvider(update: { caCertificate: Buffer } | { certificate: Buffer; privateKey: Buffer }): Provider {
  return {
    // Deliver on the next microtask: grpc-js registers its watcher only after adding the listener.
    addCaCertificateListener: (l) => queueMicrotask(() => ('caCertificate' in update ? l(update) : undefined)),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l) => queueMicrotask(() => ('certificate' in update ? l(update) : undefined)),
    removeIdentityCertificateListener: () => {},
  };
}

export function tlsServerCredentials(files: TlsFiles): grpc.ServerCredentials {
  const identity = staticProvider({ certificate: readFileSync(files.certFile), privateKey: readFileSync(files.keyFile) });
  const caFiles = files.clientCaFile === undefined ? [] : ([] as string[]).concat(files.clientCaFile);
  // One PEM bundle: OpenSSL trusts every certificate in it.
  const bundle = caFiles.map((f) => readFileSync(f, 'utf8').trim()).join('\n');
  const clientCa = caFiles.length ? staticProvider({ caCertificate: Buffer.from(bundle + '\n') }) : null;
  // `false`: a client certificate is optional (tokens are the other way in).
  // grpc-js 1.14 names the first parameter caCertificateProvider but passes it
  // to the constructor as the identity provider: identity goes first.
  return grpc.experimental.createCertificateProviderServerCredentials(identity, clientCa as Provider, false);
}
