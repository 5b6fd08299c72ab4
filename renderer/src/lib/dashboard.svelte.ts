// The reactive shell around LiveModel: owns the API client and the one live
// connection, and publishes the model to the views at most once per frame, so a
// burst of events costs one render.
import type { ActionSummary, ApiStatus, MetricsSnapshot } from '../../../engine/common/api-types';
import type { ActionSignal, FarmMode, FarmStatus, HealthProblem } from '../../../engine/common/farm-modes';
import { ApiFailure, KilnApi } from './api';
import { EMPTY_FILTER, matchesFilter, type ActionFilter } from './filters';
import { LiveConnection } from './live-connection';
import { LiveModel } from './live-model';
import { TokenKeeper } from './token';

export type ConnectionState = 'connecting' | 'live' | 'down';
const PAGE = 500;

export class Dashboard {
  connection = $state<ConnectionState>('connecting');
  /** When the next reconnect attempt happens (epoch ms), while down. */
  retryAt = $state<number | null>(null);
  status = $state.raw<ApiStatus | null>(null);
  metrics = $state.raw<MetricsSnapshot | null>(null);
  /** The polite farm (mode, slots and why, pause, slots history); null from an engine without one. */
  farm = $state.raw<FarmStatus | null>(null);
  /** Named problems, worst first. */
  health = $state.raw<readonly HealthProblem[]>([]);
  /** All known actions, newest first (unfiltered). */
  allActions = $state.raw<readonly ActionSummary[]>([]);
  filter = $state.raw<ActionFilter>(EMPTY_FILTER);
  hasOlder = $state(false);
  loadingActions = $state(false);
  actionsError = $state<string | null>(null);
  /** Bumped on every publish; charts and log views key their redraws on it. */
  revision = $state(0);
  /** A clock for "running for 12 s" labels, ticking once a second. */
  now = $state(Date.now());
  token = $state<string | undefined>(undefined);
  /** When `status` was read (epoch ms). */
  private statusAt = 0;

  readonly model = new LiveModel();
  readonly api: KilnApi;
  private readonly conn: LiveConnection;
  private readonly tokens: TokenKeeper;
  private scheduled = false;
  private clock: ReturnType<typeof setInterval> | undefined;

  /** Actions matching the filter: the server filters history, this filters live arrivals. */
  actions = $derived.by(() => {
    const f = this.filter;
    return this.allActions.filter((a) => matchesFilter(a, f));
  });

  constructor() {
    this.tokens = new TokenKeeper(typeof localStorage === 'undefined' ? undefined : localStorage);
    this.adoptFragmentToken();
    this.api = new KilnApi('', undefined, () => this.token);
    this.conn = new LiveConnection({
      url: (follow, ticket) => this.api.eventsUrl(follow, ticket),
      // EventSource can't send the token: trade it for a single-use ticket first.
      ticket: () => this.eventTicket(),
      open: (url) => new EventSource(url),
      onEvent: (e) => {
        this.model.handle(e);
        this.schedule();
      },
      onUp: () => {
        this.connection = 'live';
        this.retryAt = null;
        // Events may have been missed while down: re-read the state they describe.
        void this.refreshStatus();
        void this.loadActions();
      },
      onDown: (ms) => {
        this.connection = 'down';
        this.retryAt = Date.now() + ms;
      },
    });
  }

  start(): void {
    // The window may be handed a token after load (same-document fragment change).
    addEventListener('hashchange', () => this.adoptFragmentToken());
    this.conn.start();
    void this.refreshStatus();
    void this.api.metrics().then((m) => this.model.handle({ event: 'metrics', data: m }), () => {}).then(() => this.schedule());
    // Charts start from the engine's last hour, not from when this page opened (older engines: live only).
    void this.api.metricsHistory('hour').then((h) => this.model.series.seed(h.points), () => {}).then(() => this.schedule());
    this.clock = setInterval(() => (this.now = Date.now()), 1000);
  }

  stop(): void {
    this.conn.stop();
    clearInterval(this.clock);
  }

  /** The engine's uptime now: its last answer plus the time since (so it keeps counting between reads). */
  uptimeMs(): number | null {
    const s = this.status;
    return s ? s.uptimeMs + Math.max(0, this.now - this.statusAt) : null;
  }

  async refreshStatus(): Promise<void> {
    try {
      const status = await this.api.status();
      this.statusAt = Date.now();
      this.model.applyStatus(status);
      this.schedule();
    } catch {
      /* the connection state already says the engine is away */
    }
  }

  setFilter(f: ActionFilter): void {
    this.filter = f;
    void this.loadActions();
  }

  /** Loads the newest page for the current filter, or the next older page. */
  async loadActions(older = false): Promise<void> {
    if (older && !this.model.nextCursor) return;
    const filter = this.filter;
    this.loadingActions = true;
    try {
      const page = await this.api.actions(filter, { cursor: older ? this.model.nextCursor : undefined, limit: PAGE });
      if (filter !== this.filter) return; // a newer filter was chosen meanwhile
      this.model.applyPage(page, older);
      this.actionsError = null;
      this.schedule();
    } catch (e) {
      this.actionsError = e instanceof ApiFailure ? e.message : String(e);
    } finally {
      this.loadingActions = false;
    }
  }

  private async eventTicket(): Promise<string | undefined> {
    if (!this.token) return undefined;
    try {
      return (await this.api.eventTicket()).ticket;
    } catch (e) {
      // An engine without tickets (404/405), or a token it refuses (401): try without;
      // loopback needs none, and elsewhere the stream's own failure drives the backoff.
      if (e instanceof ApiFailure && !e.unreachable) return undefined;
      throw e;
    }
  }

  private adoptFragmentToken(): void {
    const keep = this.tokens.adoptFromFragment(location.hash);
    if (keep !== location.hash) history.replaceState(null, '', location.pathname + location.search + keep);
    this.token = this.tokens.get();
  }

  setToken(t: string | undefined): void {
    this.token = t?.trim() || undefined;
    this.tokens.set(this.token);
  }

  async setExecution(enabled: boolean): Promise<void> {
    const res = await this.api.setExecution(enabled);
    this.model.handle({ event: 'execution', data: { executing: res.executing, at: Date.now() } });
    this.schedule();
  }

  async setMode(mode: FarmMode): Promise<void> {
    this.model.applyFarm(await this.api.setMode(mode));
    this.schedule();
  }

  /** Minutes, or undefined for until resumed. */
  async pause(minutes?: number): Promise<void> {
    this.model.applyFarm(await this.api.pause(minutes));
    this.schedule();
  }

  async resume(): Promise<void> {
    this.model.applyFarm(await this.api.resume());
    this.schedule();
  }

  /** Signals a running action; resolves with what came of it ("paused (SIGSTOP)"). */
  async signal(id: string, signal: ActionSignal): Promise<string> {
    return (await this.api.signal(id, signal)).done;
  }

  async cancel(id: string): Promise<string> {
    return (await this.api.cancel(id)).done;
  }

  /** Starts streaming an action's logs over the live connection. */
  follow(id: string) {
    const logs = this.model.follow(id);
    this.conn.setFollow(this.model.followed());
    return logs;
  }

  unfollow(id: string): void {
    this.model.unfollow(id);
    this.conn.setFollow(this.model.followed());
  }

  /** Call after changing the model outside an event (e.g. a fetched log). */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      this.publish();
    };
    // rAF pauses in hidden windows, which is what we want: no rendering nobody sees.
    if (typeof requestAnimationFrame === 'function') requestAnimationFrame(run);
    else setTimeout(run, 16);
  }

  private publish(): void {
    this.status = this.model.status;
    this.metrics = this.model.metrics;
    this.farm = this.model.farm;
    this.health = this.model.health;
    this.allActions = this.model.actions.list();
    this.hasOlder = this.model.nextCursor !== undefined;
    this.revision++;
  }
}
