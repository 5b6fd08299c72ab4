// View logic for LAN mode: the TLS indicator, instance names, token names and
// the Bazel flag a new token goes with, and the Connect view's lines (from
// GET /api/connect when the engine has it, the local snippet otherwise).
import type { ApiStatus, ConnectInfo, TokenCreated } from '../../../engine/common/api-types';
import { tokenHeaderFlag } from '../../../engine/common/bazel-flags';
import { ApiFailure } from './api';
import { bazelrcSnippet, suggestedJobs } from './bazelrc';

/** Token names the engine accepts (engine/auth/tokens.ts). */
const TOKEN_NAME = /^[A-Za-z0-9._@-]{1,64}$/;

/** Why a token name would be refused, or null when it is fine. */
export function tokenNameProblem(name: string, taken: readonly string[] = []): string | null {
  const n = name.trim();
  if (!n) return 'Give the token a name, such as the person or machine that will use it.';
  if (n.length > 64) return 'Names are at most 64 characters.';
  if (!TOKEN_NAME.test(n)) return "Use letters, digits, '.', '_', '@' and '-' only.";
  if (taken.includes(n)) return `There is already a token named "${n}".`;
  return null;
}

/** The exact flag Bazel needs to send a token (the engine says it; older engines don't). */
export function bazelFlagFor(created: Pick<TokenCreated, 'token'> & Partial<Pick<TokenCreated, 'bazelFlag'>>): string {
  return created.bazelFlag ?? tokenHeaderFlag(created.token);
}

export type Tone = 'ok' | 'warn' | 'idle';

/** What the TLS indicator says. `tls` is absent on engines older than LAN mode: read it off the URL. */
export function securityBadge(s: Pick<ApiStatus, 'tls' | 'grpcUrl' | 'lan'> | null): { tls: boolean; label: string; detail: string; tone: Tone } | null {
  if (!s) return null;
  const tls = s.tls ?? s.grpcUrl.startsWith('grpcs:');
  if (tls) return { tls, label: 'TLS', detail: 'gRPC and the dashboard are encrypted (grpcs://, https://) with Kiln\u2019s certificate.', tone: 'ok' };
  if (s.lan) return { tls, label: 'No TLS', detail: 'LAN mode without TLS: tokens and build data cross the network unencrypted.', tone: 'warn' };
  return { tls, label: 'Local only', detail: 'Plain connections on this machine only (loopback); nothing is reachable from the network.', tone: 'idle' };
}

export function instanceLabel(name: string): string {
  return name === '' ? 'default' : name;
}

/** Instance names seen so far, the default first, then alphabetical. */
export function instanceNames(s: Pick<ApiStatus, 'instanceNames'> | null): string[] {
  const names = [...new Set(s?.instanceNames ?? [])];
  return names.sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b)));
}

/** The action list gets an Instance column once Bazel used a named instance. */
export function showInstanceColumn(s: Pick<ApiStatus, 'instanceNames'> | null): boolean {
  return (s?.instanceNames ?? []).some((n) => n !== '');
}

/** The engine predates the endpoint (or doesn't serve it): fall back instead of failing. */
export function isMissingEndpoint(e: unknown): boolean {
  return e instanceof ApiFailure && (e.httpStatus === 404 || e.httpStatus === 405);
}

export interface ConnectLinesInput {
  /** GET/POST /api/connect; null when the engine has no such endpoint. */
  info: ConnectInfo | null;
  status: Pick<ApiStatus, 'grpcUrl' | 'concurrency' | 'lan'>;
  instanceName?: string;
  /** Fallback only: a LAN address to put in place of the listen address. */
  host?: string;
}

/**
 * The engine's lines (endpoint, certificate, token header) plus what only the
 * dashboard knows: the chosen instance name and a --jobs sized to the slots.
 */
export function connectSnippet(o: ConnectLinesInput): string {
  if (!o.info) {
    return bazelrcSnippet({
      grpcUrl: o.status.grpcUrl,
      host: o.host || undefined,
      instanceName: o.instanceName || undefined,
      concurrency: o.status.concurrency,
      tokenRequired: !!o.host && !!o.status.lan?.tokenRequired,
    });
  }
  const [first, ...rest] = o.info.bazelrc;
  const lines = first === undefined ? [] : [first];
  if (o.instanceName) lines.push(`build --remote_instance_name=${o.instanceName}`);
  lines.push(...rest, `build --jobs=${suggestedJobs(o.status.concurrency)}`);
  return lines.join('\n') + '\n';
}

