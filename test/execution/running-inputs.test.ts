// A running action's detail shows its inputs (files and bytes) as soon as the
// input tree is read, not only once the action has finished: real engine,
// real local executor, an action that waits for the test to let it go.
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionDetail, ActionPage } from '../../engine/common/api-types';
import { startTestEngine, type TestEngine } from '../helpers';
import { executeRequest, uploadAction } from './harness';

let t: TestEngine;

beforeAll(async () => {
  t = await startTestEngine({ config: { sandbox: 'off' } });
}, 60_000);
afterAll(() => t?.stop());

async function api<T>(path: string): Promise<T> {
  const res = await fetch(new URL(path, t.engine.httpUrl));
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
}

async function until<T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('running action detail', () => {
  it('has the input count and size while the action runs', async () => {
    // Not in the data folder: as root, actions run as users of their own, and the data folder is closed to them.
    const signals = mkdtempSync(join(tmpdir(), 'kiln-running-inputs-'));
    chmodSync(signals, 0o755);
    const go = join(signals, 'go');
    const inputs = { 'a.txt': 'alpha\n', 'b.txt': 'beta beta\n', 'c.txt': '' };
    const digest = await uploadAction(t.clients, { argv: ['/bin/sh', '-c', `while [ ! -e ${go} ]; do sleep 0.05; done; cat a.txt`], inputs });
    const done = t.clients.execution.execute.collect(executeRequest(digest));
    try {
      const running = await until('the action to run', async () => {
        const page = await api<ActionPage>('/api/actions?state=running');
        return page.items[0];
      });
      const detail = await until('its inputs', async () => {
        const d = await api<ActionDetail>(`/api/actions/${running.id}`);
        return d.inputFiles !== undefined ? d : undefined;
      });
      expect(detail.state).toBe('running');
      expect(detail).toMatchObject({ inputFiles: 3, inputBytes: Object.values(inputs).join('').length });
      expect(existsSync(go)).toBe(false); // Still running: it has not been let go.
    } finally {
      writeFileSync(go, '');
      await done;
      rmSync(signals, { recursive: true, force: true });
    }
    const finished = (await api<ActionPage>('/api/actions?state=finished')).items[0];
    expect(await api<ActionDetail>(`/api/actions/${finished.id}`)).toMatchObject({ inputFiles: 3, inputBytes: 16 });
  }, 60_000);
});
