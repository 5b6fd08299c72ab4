// Real Bazel 4.2.3 against a Kiln with one slot whose peers are two more Kilns
// (TLS, a token demanded even on loopback, a token each made for the first):
// 40 one-second genrules run here and on both peers with the right outputs,
// and stopping one peer mid-build fails nothing. Heavy: run it under
// flock /tmp/kiln-heavy.lock, one Bazel test at a time.
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenStore } from '../../engine/auth/tokens';
import { tokenStorePath } from '../../engine/lan/access';
import { BazelWorkspace, findBazel4, parseProcessSummary, executedKinds, startKiln, type RunningKiln } from './harness';

const bazel = findBazel4();
const LONG = 10 * 60_000;
const COUNT = 40;

async function peerKiln(): Promise<{ kiln: RunningKiln; token: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'kiln-e2e-peer-'));
  const token = new TokenStore(tokenStorePath(dataDir)).add('kiln-a');
  const kiln = await startKiln({ dataDir, config: { tls: 'on', requireTokenOnLoopback: true, concurrency: 2, mode: 'normal' } });
  return { kiln, token };
}

function expectedLines(): string {
  return Array.from({ length: COUNT }, (_, i) => `item-${String(i).padStart(3, '0')}\n`).join('');
}

describe.skipIf(!bazel)(`Bazel 4.2.3 through a one-slot Kiln with two peer Kilns${bazel ? '' : ' (skipped: Bazel 4.2.3 is not installed here; .ci/run installs it)'}`, () => {
  let a: RunningKiln;
  let b: { kiln: RunningKiln; token: string };
  let c: { kiln: RunningKiln; token: string };
  let ws: BazelWorkspace;
  const flags = () => [
    '--remote_executor=' + a.url,
    '--spawn_strategy=remote',
    '--genrule_strategy=remote',
    '--noremote_local_fallback',
    '--remote_timeout=120',
    '--remote_download_outputs=all',
    '--noremote_accept_cached',
    '--jobs=16',
  ];

  beforeAll(async () => {
    [b, c] = await Promise.all([peerKiln(), peerKiln()]);
    const entry = (p: { kiln: RunningKiln; token: string }, name: string) => ({
      url: p.kiln.url,
      token: p.token,
      tlsCaFile: join(p.kiln.dataDir, 'tls', 'ca.pem'),
      statusUrl: p.kiln.engine.httpUrl.replace(/\/$/, ''),
      name,
    });
    a = await startKiln({ config: { concurrency: 1, mode: 'normal', peers: [entry(b, 'b'), entry(c, 'c')] } });
    ws = await BazelWorkspace.create(bazel!, 'genrules');
    for (let i = 0; i < 150 && !(a.engine.peers!.status().every((p) => p.reachable && p.slots === 2)); i++) await new Promise((r) => setTimeout(r, 200));
    expect(a.engine.peers!.status().map((p) => [p.name, p.reachable, p.slots])).toEqual([['peer:b', true, 2], ['peer:c', true, 2]]);
  }, LONG);

  afterAll(async () => {
    await ws?.dispose();
    await a?.stop();
    await Promise.all([b?.kiln.stop(), c?.kiln.stop()]);
  }, LONG);

  it('runs the genrules here and on both peers, with the right outputs', async () => {
    const run = await ws.build('build', flags(), ['//:many']);
    expect(run.code, run.output).toBe(0);
    expect(executedKinds(parseProcessSummary(run.output)!)).toEqual({ remote: COUNT + 1 });
    expect(await ws.readOutput('many.txt')).toBe(expectedLines());

    const places = new Map<string, number>();
    for (const item of a.engine.history.list({ state: 'finished', limit: 200 }).items) {
      const where = a.engine.history.get(item.id)?.ranOn ?? '?';
      places.set(where, (places.get(where) ?? 0) + 1);
    }
    expect([...places.keys()].sort(), JSON.stringify([...places])).toEqual(['local', 'peer:b', 'peer:c']);
    for (const p of [b, c]) expect(p.kiln.engine.history.list({ state: 'finished' }).items.length).toBeGreaterThan(0);
  }, LONG);

  it('still builds when a peer stops mid-build', async () => {
    expect((await ws.clean()).code).toBe(0);
    const build = ws.build('build', flags(), ['//:many']);
    const running = () => c.kiln.engine.scheduler!.runningActions().length;
    for (let i = 0; i < 600 && running() === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(running()).toBeGreaterThan(0);
    await c.kiln.engine.stop({ drainMs: 0 });
    const run = await build;
    expect(run.code, run.output).toBe(0);
    expect(await ws.readOutput('many.txt')).toBe(expectedLines());
  }, LONG);
});
