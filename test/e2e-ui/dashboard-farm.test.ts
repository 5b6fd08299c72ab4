// The polite farm in the dashboard against a real engine (with a fake executor
// that holds actions running and records signals): the Workers view's farm
// panel (summary, mode switch, pause and resume), the health banner, and the
// action detail's pause / resume / cancel buttons with their recorded history.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { SlotGovernor } from '../../engine/governor/slot-governor';
import { startTestEngine, type TestEngine, type TestEngineOptions } from '../helpers';
import { FakeExecutor } from '../execution/fake-executor';
import { executeRequest, uploadAction } from '../execution/harness';
import { chromiumMissing, launchBrowser, SCREENSHOTS, type TestBrowser } from './browser';
import { ensureRendererBuilt } from './renderer-build';

const TIMEOUT = 90_000;
// Each wait gets a third of the test's time, so a hang fails at the step that hung (with its line),
// not as the whole test's timeout.
const STEP = 30_000;

/** The fake executor's first n runs, or an error that says what the farm was doing. */
async function startedWithin(executor: FakeExecutor, n: number, t: TestEngine): Promise<Awaited<ReturnType<FakeExecutor['started']>>> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the fake executor had not started ${n} run(s) after ${STEP} ms; farm: ${JSON.stringify(t.engine.farm?.status() ?? null)}`)), STEP);
  });
  try {
    return await Promise.race([executor.started(n), late]);
  } finally {
    clearTimeout(timer);
  }
}

describe.skipIf(chromiumMissing)(`dashboard: the polite farm (real engine, fake executor)${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let t: TestEngine;
  let executor: FakeExecutor;
  let browser: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    await ensureRendererBuilt();
    executor = new FakeExecutor();
    t = await startTestEngine({
      executor,
      config: { concurrency: 2, mode: 'polite' },
      deskSignals: { sample: async () => ({ othersBusy: 0 }) },
      cores: 2,
      governor: new SlotGovernor({ cooldownMs: 0, riseDelayMs: 0 }),
    } as TestEngineOptions);
    browser = await launchBrowser('light');
    page = await browser.context.newPage();
    page.setDefaultTimeout(STEP);
    await page.goto(`${t.engine.httpUrl.replace(/\/$/, '')}/#token=${encodeURIComponent(t.engine.httpToken)}`);
  }, TIMEOUT * 2);

  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);
  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `farm-${name}.png`) });

  it('shows the slots and why, switches mode, pauses and resumes the farm', async () => {
    await nav('workers');
    await expect.poll(() => page.textContent('[data-testid="farm-summary"]'), { timeout: STEP }).toBe('2 of 2 slots: machine free');
    await shot('workers');

    await page.click('[data-testid="pause-15"]');
    await expect.poll(() => page.textContent('[data-testid="farm-summary"]'), { timeout: STEP }).toBe('0 of 2 slots: paused');
    expect(t.engine.farm!.paused?.until).toBeDefined();
    // The farm's own health problem shows in the banner above every view.
    await expect.poll(() => page.getAttribute('[data-testid="health-banner"]', 'data-problem'), { timeout: STEP }).toBe('farm-paused');
    await shot('paused');
    await page.click('[data-testid="resume"]');
    await page.waitForSelector('[data-testid="pause-15"]');
    expect(t.engine.farm!.paused).toBeUndefined();

    await page.click('[data-testid="mode-all-out"]');
    await expect.poll(() => page.getAttribute('[data-testid="mode-all-out"]', 'aria-checked'), { timeout: STEP }).toBe('true');
    expect(t.engine.farm!.mode).toBe('all-out');
    await expect.poll(() => page.textContent('[data-testid="farm-summary"]'), { timeout: STEP }).toBe('2 of 2 slots: every core (all-out mode)');
  }, TIMEOUT);

  it('pauses, resumes and cancels one running action from its detail view', async () => {
    const digest = await uploadAction(t.clients, { argv: ['/bin/true'], doNotCache: true, salt: 'farm-ui' });
    const call = t.clients.execution.execute.collect(executeRequest(digest)).catch(() => {});
    const [run] = await startedWithin(executor, 1, t);
    await nav('actions');
    const row = page.locator('[data-testid="action-row"][data-state="running"]').first();
    await row.waitFor({ timeout: STEP });
    await row.click();
    await page.waitForSelector('[data-testid="action-controls"]');

    await page.click('[data-testid="control-pause"]');
    await page.waitForSelector('[data-testid="control-resume"]');
    await expect.poll(() => page.textContent('[data-testid="detail"]'), { timeout: STEP }).toContain('paused (SIGSTOP)');
    await page.waitForSelector('[data-testid="stopped"]');
    await shot('detail-paused');
    await page.click('[data-testid="control-resume"]');
    await page.waitForSelector('[data-testid="control-pause"]');
    expect(executor.signals).toEqual([
      { id: run.action.id, signal: 'STOP' },
      { id: run.action.id, signal: 'CONT' },
    ]);

    await page.click('[data-testid="control-cancel"]');
    await expect.poll(() => page.textContent('[data-testid="detail"] [data-testid="badge"]'), { timeout: STEP }).toBe('Cancelled');
    await call;
    expect(run.signal.aborted).toBe(true);
  }, TIMEOUT);

  it('names execution off while Bazel waits in the banner', async () => {
    await page.keyboard.press('Escape');
    t.engine.setExecutionEnabled(false);
    const digest = await uploadAction(t.clients, { argv: ['/bin/true'], salt: 'refused' });
    await t.clients.execution.execute.collect(executeRequest(digest)).catch(() => {});
    await expect.poll(() => page.getAttribute('[data-testid="health-banner"]', 'data-problem'), { timeout: STEP }).toBe('execution-off');
    expect(await page.textContent('[data-testid="health-banner"]')).toMatch(/Turn execution on/);
    await shot('banner');
    t.engine.setExecutionEnabled(true);
    await expect.poll(() => page.locator('[data-testid="health-banner"]').count(), { timeout: STEP }).toBe(0);
  }, TIMEOUT);
});
