// A runner that passes runs through to another and only *says* whether inputs
// are out of the action's reach (Runner.inputsOutOfReach, as the action-user
// runner does), so a test or bench can compare the executor's checks with and
// without the skip while the actions run as Kiln's own user either way.
import type { RunExit, RunRequest, Runner } from '../../engine/execution/runner';

export class SayingRunner implements Runner {
  constructor(
    private readonly inner: Runner,
    public outOfReach: boolean,
  ) {}
  run(req: RunRequest): Promise<RunExit> {
    return this.inner.run(req);
  }
  kill(id: string): void {
    this.inner.kill(id);
  }
  ready() {
    return this.inner.ready();
  }
  capabilities() {
    return this.inner.capabilities();
  }
  warm() {
    return this.inner.warm?.() ?? Promise.resolve();
  }
  inputsOutOfReach(): boolean {
    return this.outOfReach;
  }
  close() {
    return this.inner.close();
  }
}
