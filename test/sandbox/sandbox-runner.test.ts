// The SandboxRunner's own bookkeeping, over a FakeRunner and a fake cgroup
// limiter (no bubblewrap needed): what it hands the inner runner, and a kill
// that arrives while the run's cgroup is still being made.
import { describe, expect, it } from 'vitest';
import { FileLogSink } from '../../engine/execution/log-sink';
import type { RunRequest } from '../../engine/execution/runner';
import type { ActionCgroup, ActionLimits, CgroupLimiter } from '../../engine/sandbox/cgroups';
import { SandboxRunner } from '../../engine/sandbox/sandbox-runner';
import { FakeRunner } from '../execution/fake-runner';

class FakeLimiter implements CgroupLimiter {
  readonly name = 'fake cgroups';
  readonly enforces = { memory: true, cpus: true, pids: true };
  readonly made: { id: string; limits: ActionLimits }[] = [];
  finished = 0;
  gate?: Promise<void>;
  async create(id: string, limits: ActionLimits): Promise<ActionCgroup> {
    this.made.push({ id, limits });
    await this.gate;
    return { procsFiles: [`/fake/${id}/cgroup.procs`], finish: async () => (this.finished++, { oomKilled: false }) };
  }
  close(): void {}
}

const host = { system: [{ path: '/usr', kind: 'dir' as const }], hidden: [] };
const request = (over: Partial<RunRequest> = {}): RunRequest => ({
  id: 'run-1',
  argv: ['exit', '0'],
  env: {},
  execRoot: '/tmp/kiln-none/run-1',
  workingDirectory: '',
  stdout: new FileLogSink('/tmp/kiln-none.out'),
  stderr: new FileLogSink('/tmp/kiln-none.err'),
  timeoutMs: 0,
  ...over,
});

describe('SandboxRunner', () => {
  it('joins the cgroups first, then runs bwrap around the argv, with the platform\'s limits over the defaults', async () => {
    const inner = new FakeRunner();
    const cgroups = new FakeLimiter();
    const runner = new SandboxRunner({ inner, bwrap: '/usr/bin/bwrap', host, cgroups, defaults: { memoryBytes: 1024, pids: 10 } });
    await runner.run(request({ platform: { memory: '2KiB', cpus: '0.5' } }));
    expect(cgroups.made).toEqual([{ id: 'run-1', limits: { memoryBytes: 2048, cpus: 0.5, pids: 10 } }]);
    expect(cgroups.finished).toBe(1);
    const argv = inner.requests[0].argv;
    expect(argv[0]).toBe('/usr/bin/bwrap');
    // The action joins its cgroup from inside, through the descriptor the inner runner opens.
    expect(inner.requests[0].writableFds).toEqual(['/fake/run-1/cgroup.procs']);
    expect(argv.slice(-5)).toEqual(['kiln-action', '1', '-', 'exit', '0']);
    expect(argv).toContain('--unshare-net');
  });

  it('without a memory cgroup, runs the action in its own sandbox through kiln-nest, which watches its limit', async () => {
    const inner = new FakeRunner();
    const runner = new SandboxRunner({ inner, bwrap: '/usr/bin/bwrap', host, defaults: { memoryBytes: 1024 }, memoryWatch: { helper: '/opt/kiln/native/kiln-nest' } });
    expect(runner.capabilities().honours.memoryLimit).toBe(true);
    await runner.run(request({ platform: { memory: '2KiB' } }));
    const argv = inner.requests[0].argv;
    // kiln-nest's folder is bound read-only for it, and it starts the action with the action's own limit.
    expect(argv.join(' ')).toContain('--ro-bind /opt/kiln/native /opt/kiln/native');
    expect(argv.slice(argv.indexOf('/opt/kiln/native/kiln-nest'))).toEqual(['/opt/kiln/native/kiln-nest', '--memory', '2048', '--keep', '/tmp/kiln-none/run-1', '--', 'exit', '0']);
    // Without the watch (a memory cgroup, or root), the argv goes to the prelude as it is.
    const plain = new FakeRunner();
    await new SandboxRunner({ inner: plain, bwrap: '/usr/bin/bwrap', host, defaults: { memoryBytes: 1024 } }).run(request());
    expect(plain.requests[0].argv.slice(-2)).toEqual(['exit', '0']);
    expect(plain.requests[0].argv).not.toContain('--memory');
  });

  it('a kill that arrives while the cgroup is being made stops the run before anything starts', async () => {
    const inner = new FakeRunner();
    const cgroups = new FakeLimiter();
    let open!: () => void;
    cgroups.gate = new Promise<void>((r) => (open = r));
    const runner = new SandboxRunner({ inner, bwrap: '/usr/bin/bwrap', host, cgroups });
    const pending = runner.run(request({ argv: ['sleep', '30'] }));
    await Promise.resolve();
    runner.kill('run-1');
    open();
    expect(await pending).toMatchObject({ killed: true, timedOut: false });
    expect(inner.requests).toEqual([]);
    expect(cgroups.finished).toBe(1);
  });
});
