// What the desktop shell needs from the engine, and nothing more. The real Engine is
// adapted to this in engine-adapter.ts; tests use a fake. engine/ never imports electron/.
import type { KilnConfig } from '../engine/config';
import type { EventBus } from '../engine/events/event-bus';
import type { MetricsSnapshot } from '../engine/common/api-types';
import type { FarmMode, FarmStatus, HealthReport } from '../engine/common/farm-modes';
import type { DeskSignals } from '../engine/governor/desk-signals';

/** The figures the tray shows. */
export type TrayMetrics = Pick<MetricsSnapshot, 'queueDepth' | 'running' | 'actionCache'>;

export interface EngineHandle {
  /** Typed engine events; the shell only subscribes. */
  readonly events: Pick<EventBus, 'on' | 'subscribe'>;
  readonly executionEnabled: boolean;
  /** The one execution switch, shared with the dashboard; emits execution.toggled. */
  setExecutionEnabled(enabled: boolean): unknown;
  /** e.g. grpc://127.0.0.1:8980 */
  readonly grpcUrl: string;
  /** Dashboard, e.g. http://127.0.0.1:8981/ */
  readonly httpUrl: string;
  /** Dashboard API token, handed to the dashboard in the URL fragment. */
  readonly httpToken: string;
  readonly metrics: { snapshot(): TrayMetrics };
  /** Stops accepting work, lets running actions finish for up to drainMs, cancels the rest, closes servers. */
  stop(options: { drainMs: number }): Promise<void>;
  /** The polite farm (absent on an engine without a scheduler); its changes come as farm.changed events. */
  readonly farm?: { status(): FarmStatus };
  /** Named problems, worst first. */
  readonly health?: { current(): HealthReport; onChange(listener: (report: HealthReport) => void): () => void };
  /** The farm's mode, shared with the dashboard; remembered across restarts. */
  setMode?(mode: FarmMode): void;
  /** Pauses the farm for `minutes`, or until resume() when undefined. */
  pause?(minutes?: number): void;
  resume?(): void;
}

/** What the shell adds to the engine beyond its config. */
export interface EngineExtras {
  /** powerMonitor's idle time, lock screen and battery, merged over the engine's own signals. */
  deskSignals?: DeskSignals;
}

export type EngineFactory = (config: KilnConfig, extras?: EngineExtras) => Promise<EngineHandle>;
