// Everything the dashboard knows, updated by API responses and live events.
// Plain TypeScript (no Svelte), so the reducer logic is unit-tested directly;
// the Svelte store publishes snapshots of it to the views.
import type { ActionPage, ApiStatus, LogStreamName, MetricsSnapshot, SseEvent } from '../../../engine/common/api-types';
import type { FarmStatus, HealthProblem } from '../../../engine/common/farm-modes';
import { withSlotPoint } from './farm';
import { ActionIndex } from './action-index';
import { LogBuffer } from './log-buffer';
import { MetricSeries } from './series';

export interface ActionLogs {
  stdout: LogBuffer;
  stderr: LogBuffer;
}

export class LiveModel {
  status: ApiStatus | null = null;
  metrics: MetricsSnapshot | null = null;
  /** The polite farm with its slots history; null from an engine without one. */
  farm: FarmStatus | null = null;
  /** Named problems, worst first. */
  health: HealthProblem[] = [];
  readonly series = new MetricSeries();
  readonly actions = new ActionIndex();
  /** Total matching actions on the server, from the last page; live inserts add to it. */
  serverTotal = 0;
  nextCursor: string | undefined;
  private logs = new Map<string, ActionLogs>();

  applyStatus(s: ApiStatus): void {
    this.status = s;
    if (s.farm) this.farm = s.farm;
    if (s.health) this.health = s.health;
  }

  /** A farm status from a PUT/POST answer or a `farm` event; events carry no history, so the point is added here. */
  applyFarm(f: FarmStatus, at = Date.now()): void {
    this.farm = { ...f, history: f.history ?? withSlotPoint(this.farm?.history ?? [], { at, slots: f.slots }) };
  }

  applyPage(page: ActionPage, append: boolean): void {
    if (!append) this.actions.clear();
    this.actions.upsert(page.items);
    this.serverTotal = page.total;
    this.nextCursor = page.nextCursor;
  }

  get executing(): boolean | undefined {
    return this.metrics?.executionEnabled ?? this.status?.executing;
  }

  /** The SSE reducer. */
  handle(e: SseEvent): void {
    switch (e.event) {
      case 'metrics':
        this.metrics = e.data;
        this.series.push(e.data);
        if (this.status) this.status = { ...this.status, executing: e.data.executionEnabled };
        break;
      case 'action': {
        const known = this.actions.get(e.data.action.id) !== undefined;
        this.actions.upsert([e.data.action]);
        if (!known && this.actions.get(e.data.action.id)) this.serverTotal++;
        break;
      }
      case 'execution':
        if (this.status) this.status = { ...this.status, executing: e.data.executing };
        if (this.metrics) this.metrics = { ...this.metrics, executionEnabled: e.data.executing };
        break;
      case 'farm':
        this.applyFarm(e.data);
        break;
      case 'health':
        this.health = e.data.problems;
        break;
      case 'log':
        this.logs.get(e.data.id)?.[e.data.stream].applyChunk(e.data.offset, e.data.data);
        break;
      case 'log-gap':
        this.logs.get(e.data.id)?.[e.data.stream].applyGap(e.data.from, e.data.to);
        break;
      case 'log-end':
        this.logs.get(e.data.id)?.[e.data.stream].finish();
        break;
    }
  }

  /** Starts keeping log buffers for an action (the view follows it). */
  follow(id: string): ActionLogs {
    let l = this.logs.get(id);
    if (!l) {
      l = { stdout: new LogBuffer(), stderr: new LogBuffer() };
      this.logs.set(id, l);
    }
    return l;
  }

  unfollow(id: string): void {
    this.logs.delete(id);
  }

  followed(): string[] {
    return [...this.logs.keys()];
  }

  logsOf(id: string, stream: LogStreamName): LogBuffer | undefined {
    return this.logs.get(id)?.[stream];
  }
}
