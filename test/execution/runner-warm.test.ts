// The runner is started with the engine, not at the first action: whatever
// decorators the execution path wraps it in (priority, platform routing,
// action user) pass warm() down. The launcher's start is a Node process
// start (~130 ms here), which the first action used to wait for.
import { afterEach, describe, expect, it } from 'vitest';
import { registerRunnerKind } from '../../engine/executor-factory';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { FakeRunner } from './fake-runner';
import { SandboxRunner } from '../../engine/sandbox/sandbox-runner';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

class WarmableRunner extends FakeRunner {
  warmed = 0;
  async warm(): Promise<void> {
    this.warmed++;
  }
}

const made: WarmableRunner[] = [];
registerRunnerKind('test-warmable', () => {
  const runner = new WarmableRunner();
  made.push(runner);
  return runner;
});

describe('warming the runner at start', () => {
  it('warms the configured runner once, through the decorators the engine wraps it in, before any action', async () => {
    t = await startTestEngine({ config: { runner: 'test-warmable' } });
    const runner = made.at(-1)!;
    expect(runner.requests).toEqual([]);
    expect(runner.warmed).toBe(1);
  });

  it('is passed on by the sandbox, so the sandboxed launcher starts with the engine too', async () => {
    const inner = new WarmableRunner();
    const sandbox = new SandboxRunner({ inner, bwrap: '/usr/bin/bwrap', host: { system: [], hidden: [] } });
    await sandbox.warm();
    expect(inner.warmed).toBe(1);
    expect(inner.requests).toEqual([]);
  });
});
