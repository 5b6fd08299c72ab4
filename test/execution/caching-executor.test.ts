// CachingExecutor: which results go to the action cache, and that a failed write never fails the action.
import { describe, expect, it } from 'vitest';
import type { BlobDigest } from '../../engine/digest';
import { CachingExecutor } from '../../engine/execution/caching-executor';
import type { PreparedAction } from '../../engine/execution/executor';
import { reapi } from '../../engine/proto';
import { FakeExecutor } from './fake-executor';

function prepared(id: string, doNotCache = false): PreparedAction {
  const noLogs = { write() {}, end() {} } as unknown as PreparedAction['logs']['stdout'];
  return {
    id,
    instance: 'main',
    actionDigest: { fn: 'sha256', hash: id.padEnd(64, '0'), size: 10 },
    action: reapi.Action.create({ doNotCache }),
    command: reapi.Command.create({ arguments: ['true'] }),
    timeoutMs: 60_000,
    logs: { stdout: noLogs, stderr: noLogs },
  };
}

class RecordingActionCache {
  readonly stored: string[] = [];
  failWith?: Error;
  async put(instance: string, digest: BlobDigest): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.stored.push(`${instance}:${digest.hash.slice(0, 4)}`);
  }
}

describe('CachingExecutor', () => {
  it('writes successful, cacheable results of cacheable actions, and nothing else', async () => {
    const inner = new FakeExecutor();
    const cache = new RecordingActionCache();
    const executor = new CachingExecutor(inner, cache);
    const run = (id: string, exitCode: number, doNotCache = false) => {
      inner.autoFinishExitCode = exitCode;
      return executor.run(prepared(id, doNotCache), new AbortController().signal);
    };
    await run('ok01', 0);
    await run('fail', 1);
    await run('nocc', 0, true);
    expect(cache.stored).toEqual(['main:ok01']);
  });

  it('logs a failed write and still answers with the result', async () => {
    const inner = new FakeExecutor();
    inner.autoFinishExitCode = 0;
    const cache = new RecordingActionCache();
    cache.failWith = new Error('disk full');
    const logged: string[] = [];
    const executor = new CachingExecutor(inner, cache, (line) => logged.push(line));
    const outcome = await executor.run(prepared('ok02'), new AbortController().signal);
    expect(outcome.status).toBe('ok');
    expect(logged.join('\n')).toMatch(/could not write action .* to the action cache: disk full/);
  });
});
