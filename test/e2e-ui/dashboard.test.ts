// The dashboard against a real engine started in-process, while real actions run
// through a small REAPI client: queue and utilization move, a running action's
// log lines arrive before it ends, and the execution switch makes Execute answer
// UNAVAILABLE. Screenshots of each view go to test-output/screenshots/.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { reapi } from '../../engine/proto';
import { grpc, grpcError, Status, startTestEngine, toWireDigest, uploadProto, type TestEngine } from '../helpers';
import { chromiumMissing, launchBrowser, SCREENSHOTS, type TestBrowser } from './browser';
import { ensureRendererBuilt } from './renderer-build';

const TIMEOUT = 90_000;
// Eight seconds of output, so a loaded machine still shows the first line well
// before the last (five seconds was too short under CI load).
const LAST_LINE = 'line 8';
const SCRIPT = 'for i in 1 2 3 4 5 6 7 8; do echo "line $i"; sleep 1; done';

/** Uploads a Command running `script` in sh, with an empty input root, and returns the ExecuteRequest. */
async function prepare(t: TestEngine, script: string, tag: string): Promise<reapi.ExecuteRequest.$Properties> {
  const c = t.clients;
  const command = reapi.Command.create({ arguments: ['sh', '-c', `${script} # ${tag}`], outputPaths: [] });
  const cmd = await uploadProto(c, reapi.Command, command);
  const root = await uploadProto(c, reapi.Directory, reapi.Directory.create({}));
  const action = await uploadProto(
    c,
    reapi.Action,
    reapi.Action.create({ commandDigest: toWireDigest(cmd.digest), inputRootDigest: toWireDigest(root.digest), doNotCache: true }),
  );
  return { instanceName: '', actionDigest: toWireDigest(action.digest), skipCacheLookup: true };
}

/** Bazel names the action in request metadata; the dashboard shows it. */
function metadataFor(mnemonic: string, target: string): grpc.Metadata {
  const md = new grpc.Metadata();
  const bytes = reapi.RequestMetadata.encode(
    reapi.RequestMetadata.create({ actionMnemonic: mnemonic, targetId: target, toolDetails: { toolName: 'kiln-e2e' } }),
  ).finish();
  md.set('build.bazel.remote.execution.v2.requestmetadata-bin', Buffer.from(bytes));
  return md;
}

describe.skipIf(chromiumMissing)(`dashboard (real engine)${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let t: TestEngine;
  let browser: TestBrowser;
  let page: Page;
  let executionWired = false;
  const running: Promise<unknown>[] = [];

  beforeAll(async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    await ensureRendererBuilt();
    t = await startTestEngine({ config: { concurrency: 2 } });
    // Execution lands in the engine late in its development; until it does, the
    // live-action parts of this test have nothing to observe.
    const probe = await prepare(t, 'true', 'probe');
    executionWired = await t.clients.execution.execute.collect(probe).then(
      () => true,
      (e: grpc.ServiceError) => e.code !== Status.UNIMPLEMENTED,
    );
    browser = await launchBrowser('light');
    page = await browser.context.newPage();
    page.setDefaultTimeout(TIMEOUT);
  }, TIMEOUT * 2);

  afterAll(async () => {
    await Promise.allSettled(running);
    await browser?.close();
    await t?.stop();
  });

  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);
  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `engine-${name}.png`) });

  it('loads from the engine and shows where to point Bazel', async () => {
    await page.goto(`${t.engine.httpUrl.replace(/\/$/, '')}/#token=${encodeURIComponent(t.engine.httpToken)}`);
    await expect.poll(() => page.textContent('[data-testid="grpc-url"]'), { timeout: TIMEOUT }).toContain(t.engine.grpcUrl);
    await expect.poll(() => page.textContent('[data-testid="engine-status"]'), { timeout: TIMEOUT }).toContain('Serving');
    await shot('overview-idle');
  }, TIMEOUT);

  it('shows queue and utilization move while actions run, and streams a running log', async (ctx) => {
    if (!executionWired) ctx.skip('the engine does not register the Execution service yet');
    // Three 8-second actions on two slots: one must queue.
    for (let i = 1; i <= 3; i++) {
      const req = await prepare(t, SCRIPT, `run-${i}-${Date.now()}`);
      running.push(t.clients.execution.execute.collect(req, metadataFor('Genrule', `//e2e:lines_${i}`)).catch(() => {}));
    }
    await expect.poll(() => page.textContent('[data-testid="stat-util"]'), { timeout: TIMEOUT }).toContain('2 of 2 slots busy');
    await expect.poll(() => page.textContent('[data-testid="stat-queue"] .value'), { timeout: TIMEOUT }).toBe('1');
    await shot('overview-busy');

    await nav('workers');
    await expect.poll(() => page.locator('[data-testid="slot"][data-busy="true"]').count(), { timeout: TIMEOUT }).toBe(2);
    expect(await page.textContent('[data-testid="slot"][data-busy="true"]')).toMatch(/Genrule|\/\/e2e:lines_/);
    await shot('workers-busy');

    await nav('actions');
    const runningRow = page.locator('[data-testid="action-row"][data-state="running"]').first();
    await runningRow.waitFor({ timeout: TIMEOUT });
    await shot('actions-running');
    await runningRow.click();
    await page.waitForSelector('[data-testid="detail"]');
    await expect.poll(() => page.textContent('[data-testid="log"]').catch(() => ''), { timeout: TIMEOUT }).toContain('line 1');
    // The log arrived while the action was still running.
    const logged = (await page.textContent('[data-testid="log"]')) ?? '';
    expect(logged).not.toContain(LAST_LINE);
    await shot('detail-running');
    await expect.poll(() => page.textContent('[data-testid="log"]'), { timeout: TIMEOUT }).toContain(LAST_LINE);
    await expect.poll(() => page.textContent('[data-testid="detail"] [data-testid="badge"]'), { timeout: TIMEOUT }).toBe('Succeeded');
    await shot('detail-finished');
    await page.keyboard.press('Escape');
    await expect.poll(() => page.locator('[data-testid="detail"]').count()).toBe(0);
  }, TIMEOUT * 2);

  it('turns execution off from Settings, and Execute is refused', async (ctx) => {
    await nav('settings');
    const sw = page.locator('[data-testid="execution-switch"]');
    await expect.poll(() => sw.getAttribute('aria-checked'), { timeout: TIMEOUT }).toBe('true');
    await sw.click();
    await expect.poll(() => sw.getAttribute('aria-checked'), { timeout: TIMEOUT }).toBe('false');
    expect(t.engine.executionEnabled).toBe(false);
    await expect.poll(() => page.textContent('[data-testid="engine-status"]')).toContain('Execution off');
    await shot('settings-execution-off');
    if (!executionWired) ctx.skip('the engine does not register the Execution service yet');
    const req = await prepare(t, 'echo refused', `off-${Date.now()}`);
    const err = await grpcError(t.clients.execution.execute.collect(req));
    expect(err.code).toBe(Status.UNAVAILABLE);
    await sw.click();
    await expect.poll(() => sw.getAttribute('aria-checked'), { timeout: TIMEOUT }).toBe('true');
  }, TIMEOUT);

  it('shows the cache and connect views', async () => {
    await nav('cache');
    await page.waitForSelector('[data-testid="cache-usage"]');
    await shot('cache');
    await nav('connect');
    expect(await page.textContent('[data-testid="bazelrc"]')).toContain(`build --remote_executor=${t.engine.grpcUrl}`);
    expect(await page.textContent('[data-testid="bazelrc"]')).toContain('build --jobs=4');
    await shot('connect');
  }, TIMEOUT);
});
