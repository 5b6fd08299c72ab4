// A runner added through configuration alone: registered as a kind, selected by
// `runner:` in the config given to Engine.start, and driven by a real Execute
// call through the real scheduler and services.
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../engine/config';
import { ConfigError, loadConfig } from '../../engine/config-load';
import { registerRunnerKind } from '../../engine/executor-factory';
import { DIGEST_FUNCTIONS } from '../../engine/digest';
import { toBlobDigest } from '../../engine/digest';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { toWireDigest } from '../helpers/blobs';
import { FakeRunner } from './fake-runner';
import { executeRequest, responseOf, uploadAction } from './harness';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

const fakes: FakeRunner[] = [];
registerRunnerKind('test-fake', () => {
  const runner = new FakeRunner();
  fakes.push(runner);
  return runner;
});

describe('choosing the runner by configuration', () => {
  it('runs an Execute call through a runner named only in the config', async () => {
    t = await startTestEngine({ config: { runner: 'test-fake' } });
    const runner = fakes.at(-1)!;
    const c = t.clients;
    const digest = await uploadAction(c, { argv: ['write', 'out.txt', 'from the fake'], outputPaths: ['out.txt'] });
    const ops = await c.execution.execute.collect(executeRequest(digest, { inlineStdout: true }));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code ?? 0).toBe(0);
    expect(response.result?.exitCode).toBe(0);
    const [file] = response.result!.outputFiles;
    expect(file.path).toBe('out.txt');
    expect((await t.engine.store.readAll(toBlobDigest(file.digest, DIGEST_FUNCTIONS.sha256))).toString()).toBe('from the fake');
    expect(runner.requests.map((r) => r.argv)).toEqual([['write', 'out.txt', 'from the fake']]);
    // The engine's decorators still apply: the result is in the action cache with its metadata.
    const cached = await c.actionCache.get({ actionDigest: toWireDigest(digest) });
    expect(cached.executionMetadata?.worker).toMatch(/^kiln@/);
    await t.stop();
    expect(runner.closed).toBe(true);
  });

  it('refuses an unknown executor or runner in one line naming the key and what it accepts', async () => {
    await expect(startTestEngine({ config: { executor: 'mainframe' } })).rejects.toThrow(/^executor: "mainframe" is not a known executor; use local/);
    await expect(startTestEngine({ config: { runner: 'abacus' } })).rejects.toThrow(/^runner: "abacus" is not a known runner; use process or /);
  });

  it('config files and flags accept registered kinds and refuse others with a ConfigError (exit code 2)', () => {
    const base = { ...defaultConfig(), dataDir: '/nonexistent-kiln' };
    expect(loadConfig({ base, flags: { runner: 'test-fake' }, savedSettings: false })).toMatchObject({ executor: 'local', runner: 'test-fake' });
    expect(() => loadConfig({ base, flags: { executor: 'mainframe' }, savedSettings: false })).toThrow(ConfigError);
    expect(() => loadConfig({ base, flags: { runner: 'abacus' }, savedSettings: false })).toThrow(/^runner: "abacus" is not a known runner; use process or wasi or bubblewrap or test-fake/);
  });
});
