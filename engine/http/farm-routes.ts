// The polite farm's endpoints of the HTTP API: health, the mode, pausing the
// whole farm, and signalling or cancelling one action. The server
// authenticates before calling in; this module checks the request and answers.
import type { IncomingMessage } from 'node:http';
import {
  ACTION_SIGNALS,
  FARM_MODES,
  isActionSignal,
  isFarmMode,
  type ActionControlResponse,
  type ActionSignal,
  type FarmMode,
  type FarmStatus,
  type HealthReport,
} from '../common/farm-modes';
import type { RouteReply } from './lan-routes';
import { HttpError, readJsonObject } from './request';

/** What the engine offers the farm's routes (Engine: the farm, the scheduler, the health monitor). */
export interface FarmControl {
  status(withHistory?: boolean): FarmStatus;
  /** Applies at once and is remembered for the next start. */
  setMode(mode: FarmMode): void;
  /** Minutes, or undefined for until resumed. */
  pause(minutes?: number): void;
  resume(): void;
  /** What came of it, or undefined when no action of that id runs. */
  signal(id: string, signal: ActionSignal): string | undefined;
  /** What came of it, or undefined when no action of that id is queued or running. */
  cancel(id: string): string | undefined;
  health(): HealthReport;
  onHealthChange(listener: (report: HealthReport) => void): () => void;
}

/** A week: longer than that is "until resumed". */
export const MAX_PAUSE_MINUTES = 7 * 24 * 60;

export class FarmRoutes {
  constructor(private readonly farm: FarmControl) {}

  /** Undefined when the path is not one of these routes. */
  async handle(req: IncomingMessage, segments: string[]): Promise<RouteReply | undefined> {
    const method = req.method ?? 'GET';
    const [, resource, id, sub, ...more] = segments;
    if (more.length > 0) return undefined;
    switch (resource) {
      case 'health':
        if (id !== undefined) return undefined;
        allow(method, ['GET', 'HEAD']);
        return { status: 200, json: this.farm.health() };
      case 'mode':
        if (id !== undefined) return undefined;
        allow(method, ['GET', 'HEAD', 'PUT']);
        if (method === 'PUT') this.farm.setMode(await modeFrom(req));
        return { status: 200, json: this.farm.status(true) };
      case 'pause':
        if (id !== undefined) return undefined;
        allow(method, ['POST', 'DELETE']);
        if (method === 'POST') this.farm.pause(await minutesFrom(req));
        else this.farm.resume();
        return { status: 200, json: this.farm.status() };
      case 'actions':
        if (id === undefined || (sub !== 'signal' && sub !== 'cancel')) return undefined;
        allow(method, ['POST']);
        return sub === 'signal' ? this.signal(req, id) : this.cancel(id);
    }
    return undefined;
  }

  private async signal(req: IncomingMessage, id: string): Promise<RouteReply> {
    const body = await readJsonObject(req, '{"signal": "STOP"}');
    const signal = typeof body.signal === 'string' ? body.signal.toUpperCase().replace(/^SIG/, '') : body.signal;
    if (!isActionSignal(signal)) {
      throw new HttpError(400, `"signal" must be one of ${ACTION_SIGNALS.join(', ')} (STOP pauses, CONT resumes), like {"signal": "TERM"}`);
    }
    const done = this.farm.signal(id, signal);
    if (done === undefined) throw new HttpError(404, `no running action "${id}" on this Kiln (it is queued, finished or unknown); only a running action can be signalled`);
    return { status: 200, json: { id, done } satisfies ActionControlResponse };
  }

  private cancel(id: string): RouteReply {
    const done = this.farm.cancel(id);
    if (done === undefined) throw new HttpError(404, `no queued or running action "${id}" on this Kiln (it has finished, or is unknown)`);
    return { status: 200, json: { id, done } satisfies ActionControlResponse };
  }
}

async function modeFrom(req: IncomingMessage): Promise<FarmMode> {
  const { mode } = await readJsonObject(req, '{"mode": "polite"}');
  if (!isFarmMode(mode)) throw new HttpError(400, `"mode" must be one of ${FARM_MODES.join(', ')}, like {"mode": "polite"}`);
  return mode;
}

/** No body, {} or {"minutes": null}: until resumed. */
async function minutesFrom(req: IncomingMessage): Promise<number | undefined> {
  const { minutes } = await readJsonObject(req, '{"minutes": 15}', true);
  if (minutes === undefined || minutes === null) return undefined;
  if (typeof minutes !== 'number' || !Number.isFinite(minutes) || minutes <= 0 || minutes > MAX_PAUSE_MINUTES) {
    throw new HttpError(400, `"minutes" must be a number above 0 and at most ${MAX_PAUSE_MINUTES} (a week), or absent to pause until resumed`);
  }
  return minutes;
}


function allow(method: string, allowed: string[]): void {
  if (!allowed.includes(method)) throw new HttpError(405, `${method} is not allowed here`, { Allow: allowed.join(', ') });
}
