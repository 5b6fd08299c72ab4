// One peer Kiln as an execution target: the same REAPI client and remote
// executor an upstream cluster gets (upload missing inputs, Execute, bring the
// outputs back into the local CAS), with the peer's token and TLS, and the
// x-kiln-forwarded header so the peer runs the action itself. Its status is
// read every few seconds; room() is what it offers us minus what we already
// run there. A run that fails takes the peer out of the choice until its
// status answers again.
import type { Clock } from '../clock';
import type { PeerStatus } from '../common/api-types';
import type { PoolTarget } from '../execution/peer-pool-executor';
import type { ExecutionHooks, ExecutionOutcome, Executor, PreparedAction } from '../execution/executor';
import { FORWARDED_HEADER } from '../grpc/services';
import type { BlobStore } from '../store/blob-store';
import { RemoteExecutor } from '../upstream/remote-executor';
import { UpstreamClient } from '../upstream/upstream-client';
import { offeredSlots, readPeerStatus, type PeerReading } from './peer-status';

export interface PeerOptions {
  name: string;
  url: string;
  /** http(s)://HOST:PORT of its dashboard API. */
  statusUrl: string;
  token?: string;
  tlsCa?: Buffer;
  source: PeerStatus['source'];
  store: BlobStore;
  clock: Clock;
  /** How often its status is read; 0: only when refresh() is called (tests). */
  pollMs: number;
  /** Told whenever what it offers changes (the engine resizes the scheduler). */
  onChange?: () => void;
  log?: (line: string) => void;
  /** Reads its status; the dashboard API by default (tests inject a fake). */
  readStatus?: (statusUrl: string, opts: { token?: string; ca?: Buffer }) => Promise<PeerReading>;
}

export class Peer implements PoolTarget {
  readonly name: string;
  readonly executor: Executor;
  private readonly client: UpstreamClient;
  private readonly remote: RemoteExecutor;
  private timer?: NodeJS.Timeout;
  private reading?: PeerReading;
  /** Our actions running there, now and when its status was read (its `running` counts them too). */
  private ours = 0;
  private oursAtReading = 0;
  private reachable?: boolean;
  private problem?: string;
  private lastSeen?: number;
  /** A run failed there since the last good status read: offer nothing until it answers again. */
  private failed = false;

  constructor(private readonly opts: PeerOptions) {
    this.name = `peer:${opts.name}`;
    this.client = new UpstreamClient({
      url: opts.url,
      headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), [FORWARDED_HEADER]: '1' },
      tlsCa: opts.tlsCa,
      clock: opts.clock,
    });
    this.remote = new RemoteExecutor({ upstream: this.client, store: opts.store, clock: opts.clock, slots: 0 });
    this.executor = {
      validateCommand: () => {},
      capacity: () => ({ slots: this.share(), ready: this.room() > 0 }),
      run: (action, signal, hooks) => this.run(action, signal, hooks),
      close: async () => {},
    };
    if (opts.pollMs > 0) {
      this.timer = setInterval(() => void this.refresh(), opts.pollMs);
      this.timer.unref();
      void this.refresh();
    }
  }

  get url(): string {
    return this.opts.url;
  }

  /** Slots it offers us: what it offers everyone, less what others run there. */
  share(): number {
    if (!this.reading || !this.reachable || this.failed) return 0;
    const { report } = this.reading;
    const othersRunning = Math.max(0, (report.running ?? 0) - this.oursAtReading);
    return Math.max(0, offeredSlots(report) - othersRunning);
  }

  room(): number {
    return this.share() - this.ours;
  }

  /** Reads its status now. */
  async refresh(): Promise<void> {
    const before = this.share();
    const ours = this.ours;
    try {
      const reading = await (this.opts.readStatus ?? readPeerStatus)(this.opts.statusUrl, { token: this.opts.token, ca: this.opts.tlsCa });
      this.reading = reading;
      this.oursAtReading = Math.min(ours, this.ours);
      this.lastSeen = this.opts.clock.now();
      if (this.reachable === false) this.opts.log?.(`kiln: peer ${this.opts.name} answers again`);
      this.reachable = true;
      this.failed = false;
      this.problem = offeredSlots(reading.report) === 0 ? busyReason(reading) : undefined;
    } catch (err) {
      if (this.reachable !== false) this.opts.log?.(`kiln: peer ${this.opts.name} is unreachable: ${(err as Error).message}`);
      this.reachable = false;
      this.problem = (err as Error).message;
    }
    if (this.share() !== before) this.opts.onChange?.();
  }

  status(): PeerStatus {
    const report = this.reading?.report;
    return {
      name: this.name,
      url: this.opts.url,
      source: this.opts.source,
      reachable: this.reachable,
      problem: this.problem,
      slots: this.share(),
      running: this.ours,
      mode: report?.farm?.mode,
      executing: report?.executing,
      paused: report ? !!report.farm?.paused : undefined,
      roundTripMs: this.reading?.roundTripMs,
      lastSeen: this.lastSeen,
    };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.client.close();
  }

  private async run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome> {
    this.ours++;
    try {
      return await this.remote.run(action, signal, hooks);
    } catch (err) {
      if (!signal.aborted && !this.failed) {
        this.failed = true;
        this.problem = `an action failed there: ${(err as Error).message}`;
        this.opts.onChange?.();
      }
      throw err;
    } finally {
      this.ours--;
    }
  }
}

function busyReason({ report }: PeerReading): string {
  if (!report.executing) return 'execution is off there';
  if (report.farm?.paused) return 'it is paused';
  return 'it has no slot to spare';
}
