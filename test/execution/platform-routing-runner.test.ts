// Per-action runner choice by platform property (how the WASI runner will be picked).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileLogSink } from '../../engine/execution/log-sink';
import { PlatformRoutingRunner } from '../../engine/execution/platform-routing-runner';
import type { RunRequest } from '../../engine/execution/runner';
import { FakeRunner } from './fake-runner';

const root = mkdtempSync(join(tmpdir(), 'kiln-routing-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function request(id: string, argv: string[], platform: Record<string, string>): RunRequest {
  mkdirSync(join(root, id), { recursive: true });
  const sink = new FileLogSink(join(root, `${id}.log`));
  return { id, argv, env: {}, execRoot: join(root, id), workingDirectory: '', stdout: sink, stderr: sink, timeoutMs: 0, platform };
}

describe('PlatformRoutingRunner', () => {
  it('sends actions whose platform matches a route to its runner, the rest to the fallback, and kills through the one that runs', async () => {
    const wasi = new FakeRunner();
    const fallback = new FakeRunner();
    const router = new PlatformRoutingRunner([{ property: 'OSFamily', value: 'wasi', runner: wasi }], fallback);
    expect((await router.run(request('a', ['exit', '0'], { OSFamily: 'wasi' }))).exitCode).toBe(0);
    expect((await router.run(request('b', ['exit', '2'], { OSFamily: 'linux' }))).exitCode).toBe(2);
    expect((await router.run(request('c', ['exit', '0'], {}))).exitCode).toBe(0);
    expect(wasi.requests.map((r) => r.id)).toEqual(['a']);
    expect(fallback.requests.map((r) => r.id)).toEqual(['b', 'c']);

    const long = router.run(request('d', ['sleep', '30'], { OSFamily: 'wasi' }));
    setTimeout(() => router.kill('d'), 50);
    expect(await long).toMatchObject({ killed: true });

    await router.close();
    expect(wasi.closed && fallback.closed).toBe(true);
  });
});
