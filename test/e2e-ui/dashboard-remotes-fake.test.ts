// The Workers view's remote capacity (the upstream and each peer Kiln next to
// the local slots) and where each action ran, against the fake API with remotes.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { chromiumMissing, launchBrowser, SCREENSHOTS, type TestBrowser } from './browser';
import { startFakeApi, type FakeApi } from './fake-api';
import { ensureRendererBuilt } from './renderer-build';

const TIMEOUT = 60_000;

describe.skipIf(chromiumMissing)(`dashboard: remote capacity and where actions ran (fake API)${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let api: FakeApi;
  let browser: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    await ensureRendererBuilt();
    api = await startFakeApi({ history: 60, concurrency: 2, remotes: true });
    browser = await launchBrowser('light');
    page = await browser.context.newPage();
    page.setDefaultTimeout(TIMEOUT);
  }, TIMEOUT);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
  });

  it('lists the upstream and each peer with reachability, slots, running and round trip', async () => {
    await page.goto(api.url);
    await page.click('nav [data-view="workers"]');
    await expect.poll(() => page.locator('[data-testid="remote"]').count(), { timeout: TIMEOUT }).toBe(3);
    const rows = await page.locator('[data-testid="remote"]').allTextContents();
    expect(rows[0]).toMatch(/Upstream.*reachable.*16.*3.*41 ms/s);
    expect(rows[1]).toMatch(/desk-2.*normal.*reachable.*4.*2.*3 ms/s);
    expect(rows[2]).toMatch(/desk-3.*takes nothing now — it is paused/s);
    expect(await page.getAttribute('[data-testid="remote"] >> nth=2', 'data-ok')).toBe('false');
    await page.screenshot({ path: join(SCREENSHOTS, 'fake-workers-remotes.png') });
  }, TIMEOUT);

  it('says in each finished action where it ran', async () => {
    await page.click('nav [data-view="actions"]');
    const texts = new Set<string>();
    await page.waitForSelector('[data-testid="action-row"]');
    for (let i = 0; i < 20 && texts.size < 3; i++) {
      await page.locator('[data-testid="action-row"]').nth(i).click();
      await page.waitForSelector('text=Inputs and outputs');
      const ranOn = page.locator('[data-testid="ran-on"]');
      if (await ranOn.count()) texts.add((await ranOn.textContent())!.trim());
      await page.keyboard.press('Escape');
      await page.waitForSelector('text=Inputs and outputs', { state: 'detached' });
    }
    expect([...texts].sort()).toEqual(['Ran on peer desk-2', 'Ran on the upstream cluster', 'Ran on this machine']);
  }, TIMEOUT * 2);
});
