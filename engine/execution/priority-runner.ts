// A Runner decorator that gives each run the priority the farm's mode asks
// for at the moment it starts (polite: background). Runs already going keep
// theirs: an unprivileged process can lower its priority but never raise it
// back. Everything else goes straight to the runner it wraps.
import type { ActionSignal, RunExit, RunPriority, RunRequest, Runner, RunnerCapabilities, RunnerReadiness } from './runner';

export class PriorityRunner implements Runner {
  constructor(
    private readonly inner: Runner,
    /** Asked once per run, as it starts. */
    private readonly priority: () => RunPriority,
  ) {}

  run(request: RunRequest): Promise<RunExit> {
    // An explicit request (a platform property, a test) wins over the mode.
    return this.inner.run(request.priority ? request : { ...request, priority: this.priority() });
  }

  kill(id: string): void {
    this.inner.kill(id);
  }

  signal(id: string, signal: ActionSignal): boolean {
    return this.inner.signal?.(id, signal) ?? false;
  }

  ready(): RunnerReadiness {
    return this.inner.ready();
  }

  inputsOutOfReach(platform: Record<string, string> | undefined): boolean {
    return this.inner.inputsOutOfReach?.(platform) ?? false;
  }

  capabilities(): RunnerCapabilities {
    return this.inner.capabilities();
  }

  /** Without this the launcher started at the first action, not at start: ~130 ms on that action. */
  warm(): Promise<void> {
    return this.inner.warm?.() ?? Promise.resolve();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
