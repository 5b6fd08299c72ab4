// Picks a runner per action by a platform property (e.g. OSFamily=wasi to a
// WASI runner), falling back to a default runner for everything else. Kill
// reaches whichever runner took the run.
import type { ActionSignal, RunExit, RunRequest, Runner, RunnerCapabilities, RunnerReadiness } from './runner';

export interface PlatformRoute {
  /** Platform property name and the value that selects `runner` (exact match). */
  property: string;
  value: string;
  runner: Runner;
}

export class PlatformRoutingRunner implements Runner {
  private readonly byRun = new Map<string, Runner>();

  constructor(
    private readonly routes: PlatformRoute[],
    private readonly fallback: Runner,
  ) {}

  /** The runner a request goes to. */
  runnerFor(req: Pick<RunRequest, 'platform'>): Runner {
    return this.routes.find((r) => req.platform?.[r.property] === r.value)?.runner ?? this.fallback;
  }

  async run(req: RunRequest): Promise<RunExit> {
    const runner = this.runnerFor(req);
    this.byRun.set(req.id, runner);
    try {
      return await runner.run(req);
    } finally {
      this.byRun.delete(req.id);
    }
  }

  signal(id: string, signal: ActionSignal): boolean {
    return this.byRun.get(id)?.signal?.(id, signal) ?? false;
  }

  kill(id: string): void {
    this.byRun.get(id)?.kill(id);
  }

  /** The runner the platform routes to decides (a WASI action runs inside Kiln, as Kiln's own user). */
  inputsOutOfReach(platform: Record<string, string> | undefined): boolean {
    return this.runnerFor({ platform }).inputsOutOfReach?.(platform) ?? false;
  }

  /** Ready when the fallback is; a route whose runner is not ready fails only its own actions. */
  ready(): RunnerReadiness {
    return this.fallback.ready();
  }

  /** The fallback's: what most actions get. */
  capabilities(): RunnerCapabilities {
    return this.fallback.capabilities();
  }

  /** Warms every runner it routes to. */
  async warm(): Promise<void> {
    await Promise.all([...this.runners()].map((r) => r.warm?.()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.runners()].map((r) => r.close()));
  }

  private runners(): Set<Runner> {
    return new Set([this.fallback, ...this.routes.map((r) => r.runner)]);
  }
}
