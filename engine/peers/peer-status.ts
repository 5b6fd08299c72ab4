// What a peer Kiln says about itself (GET /api/status on its dashboard port),
// and what that means for us: how many of our actions it takes now. A peer
// whose person is busy takes less — polite mode offers half its slots — and a
// paused peer, or one with execution off, takes nothing.
import * as http from 'node:http';
import * as https from 'node:https';
import type { ApiStatus } from '../common/api-types';

/** The fields of the peer's status we read; older peers may lack `running`. */
export type PeerReport = Pick<ApiStatus, 'executing' | 'concurrency' | 'farm' | 'running'>;

export interface PeerReading {
  report: PeerReport;
  roundTripMs: number;
}

/** Slots the peer offers to everyone now: its slots taking work (halved in polite mode), 0 when paused or off. */
export function offeredSlots(report: PeerReport): number {
  if (!report.executing || report.farm?.paused) return 0;
  const slots = report.farm?.slots ?? report.concurrency;
  return report.farm?.mode === 'polite' ? Math.floor(slots / 2) : slots;
}

const STATUS_TIMEOUT_MS = 5_000;

/** GETs `${statusUrl}/api/status` with the peer's token; rejects with a message a person can act on. */
export function readPeerStatus(statusUrl: string, opts: { token?: string; ca?: Buffer; now?: () => number }): Promise<PeerReading> {
  const now = opts.now ?? (() => performance.now());
  const url = new URL('/api/status', statusUrl);
  const get = url.protocol === 'https:' ? https.get : http.get;
  const started = now();
  return new Promise((resolve, reject) => {
    const req = get(
      url,
      {
        headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
        timeout: STATUS_TIMEOUT_MS,
        ...(url.protocol === 'https:' && opts.ca ? { ca: opts.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            const why = res.statusCode === 401 || res.statusCode === 403 ? 'it refused our token' : `HTTP ${res.statusCode}`;
            return reject(new Error(`status ${url.origin}: ${why}: ${text.slice(0, 200)}`));
          }
          try {
            resolve({ report: JSON.parse(text) as PeerReport, roundTripMs: Math.max(0, Math.round(now() - started)) });
          } catch {
            reject(new Error(`status ${url.origin}: the answer is not JSON; is this a Kiln dashboard port?`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`status ${url.origin}: no answer in ${STATUS_TIMEOUT_MS / 1000} s`)));
    req.on('error', (err) => reject(err.message.startsWith('status ') ? err : new Error(`status ${url.origin}: ${err.message}`)));
  });
}
