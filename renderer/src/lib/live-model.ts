// Everything the dashboard knows, updated by API responses and live events.
// Plain TypeScript (no Svelte), so the reducer logic is unit-tested directly;
// the Svelte store publishes snapshots of it to the views.
import type { ActionPage, ApiStatus, LogStreamName, MetricsSnapshot, SseEvent } from '../../../engine/common/api-types';
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
  readonly series = new MetricSeries();
  readonly actions = new ActionIndex();
  /** Total matching actions on the server, from the last page; live inserts add to it. */
  serverTotal = 0;
  nextCursor: string | undefined;
  private logs = new Map<string, ActionLogs>();

  applyStatus(s: ApiStatus): void {
    this.status = s;
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
