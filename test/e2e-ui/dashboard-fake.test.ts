// The dashboard against a fake API (test/e2e-ui/fake-api.ts): the views, the
// 10,000-action list, live logs with ANSI colours, the execution switch with and
// without a token, the disconnected state, and screenshots in both themes.
// dashboard.test.ts covers the same ground against a real engine.
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { chromiumMissing, launchBrowser, SCREENSHOTS, type TestBrowser } from './browser';
import { startFakeApi, type FakeApi } from './fake-api';
import { BES_INVOCATION, FAILING_LOG, PLAIN_INVOCATION } from './fake-invocations';
import { ensureRendererBuilt } from './renderer-build';

const TIMEOUT = 60_000;

describe.skipIf(chromiumMissing)(`dashboard (fake API)${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let api: FakeApi;
  let browser: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    await ensureRendererBuilt();
    api = await startFakeApi({ history: 10_000, concurrency: 4 });
    browser = await launchBrowser('light');
    page = await browser.context.newPage();
    page.setDefaultTimeout(TIMEOUT);
  }, TIMEOUT);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
  });

  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);
  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `fake-${name}.png`) });

  it('shows the overview with the address and live figures', async () => {
    await page.goto(api.url);
    await expect.poll(() => page.textContent('[data-testid="grpc-url"]'), { timeout: TIMEOUT }).toContain('grpc://127.0.0.1:8980');
    await expect.poll(() => page.textContent('[data-testid="engine-status"]'), { timeout: TIMEOUT }).toContain('Serving');
    api.startAction(6);
    api.startAction(6);
    await expect.poll(() => page.textContent('[data-testid="stat-util"]'), { timeout: TIMEOUT }).toMatch(/[1-4] of 4 slots busy/);
    await page.waitForTimeout(2500); // a few chart points
    await shot('overview-light');
  }, TIMEOUT * 2);

  it('shows worker slots with what they run', async () => {
    await nav('workers');
    await expect.poll(() => page.locator('[data-testid="slot"][data-busy="true"]').count(), { timeout: TIMEOUT }).toBeGreaterThan(0);
    expect(await page.locator('[data-testid="slot"]').count()).toBe(4);
    expect(await page.textContent('[data-testid="slot"][data-busy="true"]')).toMatch(/\/\/app\/feature\d+:build/);
    // Whether actions are sandboxed, and why not.
    await expect.poll(() => page.getAttribute('[data-testid="sandbox"]', 'data-enabled'), { timeout: TIMEOUT }).toBe('false');
    expect(await page.textContent('[data-testid="sandbox"]')).toMatch(/Not sandboxed.*apt-get install bubblewrap/s);
    await shot('workers-light');
  }, TIMEOUT);

  it('lists 10,000 actions while rendering only a window of rows', async () => {
    await nav('actions');
    await page.waitForSelector('[data-testid="action-row"]');
    const rendered = await page.locator('[data-testid="action-row"]').count();
    expect(rendered).toBeGreaterThan(5);
    expect(rendered).toBeLessThan(60);
    // Page through the whole history, 500 at a time, until all 10,000 are in the list.
    const older = page.locator('text=Load older actions');
    for (let i = 0; i < 25 && (await older.count()); i++) {
      // The button can go between count() and click() when the last page lands just then;
      // a click that finds no button is fine only in that case.
      await older.click({ timeout: 15_000 }).catch(async (err) => {
        if (await older.count()) throw err;
      });
      // Wait until that page has landed (the button re-enables, or goes at the end).
      await page.waitForFunction(() => !document.querySelector('.more button:disabled'));
    }
    await expect.poll(() => page.textContent('header p'), { timeout: TIMEOUT }).toMatch(/10,0\d\d in the history/);
    expect(await page.locator('[data-testid="action-row"]').count()).toBeLessThan(60);
    // Keyboard: End jumps to the last row, which gets rendered.
    await page.focus('[role="listbox"]');
    await page.keyboard.press('End');
    await expect.poll(() => page.locator('[data-testid="action-row"]').last().getAttribute('data-id')).toMatch(/^h\d+$/);
    await page.keyboard.press('Home');
    await shot('actions-light');
    // Twenty pages of 500 rows: on a loaded 2-core machine with another browser running, over a minute.
  }, TIMEOUT * 3);

  it('filters by search', async () => {
    await page.fill('[data-testid="search"]', 'feature');
    await expect
      .poll(async () => (await page.locator('[data-testid="action-row"]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id')))).every((id) => id?.startsWith('live-')), { timeout: TIMEOUT })
      .toBe(true);
    await page.fill('[data-testid="search"]', '');
  }, TIMEOUT);

  it('opens a running action and streams its log, escaped and coloured', async () => {
    const id = api.startAction(6);
    await page.fill('[data-testid="search"]', id);
    const row = page.locator(`[data-testid="action-row"][data-id="${id}"]`);
    await row.click();
    await page.waitForSelector('[data-testid="detail"]');
    await expect.poll(() => page.textContent('[data-testid="log"]').catch(() => ''), { timeout: TIMEOUT }).toContain('[2/6]');
    // Still running when the lines arrive.
    expect(await page.textContent('[data-testid="detail"]')).toContain('live');
    expect(await page.locator('[data-testid="log"] .ansi-fg-2').count()).toBeGreaterThan(0);
    await page.click('[data-testid="tab-stderr"]');
    await expect.poll(() => page.textContent('[data-testid="log"]').catch(() => ''), { timeout: TIMEOUT }).toContain('<in module_2.cc>');
    expect(await page.locator('[data-testid="log"] in').count()).toBe(0); // text, not markup
    await page.click('[data-testid="tab-stdout"]');
    await shot('detail-running-light');
    await expect.poll(() => page.locator('[data-testid="timing"]').count(), { timeout: TIMEOUT }).toBe(1);
    expect(await page.textContent('[data-testid="log"]')).toContain('[6/6]');
    await shot('detail-finished-light');
    await page.keyboard.press('Escape');
    await expect.poll(() => page.locator('[data-testid="detail"]').count()).toBe(0);
    await page.fill('[data-testid="search"]', '');
  }, TIMEOUT * 2);

  it('shows cache and connect views', async () => {
    await nav('cache');
    await expect.poll(() => page.textContent('[data-testid="cache-usage"]')).toContain('of 20 GiB budget');
    // Largest blobs: 20 rows from the API, largest first, with size and share of the cache.
    await expect.poll(() => page.locator('[data-testid="largest-row"]').count(), { timeout: TIMEOUT }).toBe(20);
    expect(api.largestRequests[0]).toBe('/api/cache/largest?limit=20');
    const hash0 = createHash('sha256').update('blob-0').digest('hex');
    const first = page.locator('[data-testid="largest-row"]').first();
    expect(await first.textContent()).toMatch(new RegExp(`${hash0.slice(0, 12)}….*1\\.3 GiB.*\\b(19|2\\d)%`, 's'));
    expect(await page.textContent('main')).not.toContain("doesn't report");
    // A click copies the whole digest, hash/size.
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(api.url).origin });
    await first.locator('[data-testid="largest-copy"]').click();
    await expect.poll(() => first.textContent()).toContain('Copied');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toMatch(new RegExp(`^${hash0}/\\d+$`));
    await shot('cache-light');
    await page.locator('[data-testid="largest-blobs"]').screenshot({ path: join(SCREENSHOTS, 'fake-cache-largest-light.png') });
    // Remote downloads: one line per fetch, grouped by build, newest build first.
    await expect.poll(() => page.locator('[data-testid="asset-fetch-row"]').count(), { timeout: TIMEOUT }).toBe(2);
    const downloads = (await page.textContent('[data-testid="asset-fetches"]')) ?? '';
    expect(downloads).toMatch(/build inv-2.*zlib-1\.3\.tar\.gz.*from cache.*build inv-1.*downloaded.*840 ms/s);
    await page.locator('[data-testid="asset-fetches"]').screenshot({ path: join(SCREENSHOTS, 'fake-cache-downloads-light.png') });
    await nav('connect');
    expect(await page.textContent('[data-testid="bazelrc"]')).toBe('build --remote_executor=grpc://127.0.0.1:8980\nbuild --jobs=8\n');
    await shot('connect-light');
  }, TIMEOUT);

  it('shows an invocation\'s build events: status, command line, targets, tests and a test.log', async () => {
    // The list gives Bazel's verdict where BES said it, and Kiln's view of the actions otherwise.
    await page.goto(`${api.url}#/invocations`);
    await expect.poll(() => page.textContent(`[data-invocation="${BES_INVOCATION}"]`), { timeout: TIMEOUT }).toMatch(/Tests failed \(exit 3\).*bazel test.*\/\/web\/\.\.\./s);
    expect(await page.textContent(`[data-invocation="${PLAIN_INVOCATION}"] [data-testid="invocation-state"]`)).toBe('Finished');
    await page.click(`[data-invocation="${BES_INVOCATION}"] a`);
    await expect.poll(() => page.textContent('[data-testid="build-status"]'), { timeout: TIMEOUT }).toBe('Tests failed (exit 3)');
    expect(await page.textContent('[data-testid="command-line"]')).toBe(
      'bazel test --remote_executor=grpc://127.0.0.1:8980 --bes_backend=grpc://127.0.0.1:8980 //web/...',
    );
    const targets = page.locator('[data-testid="build-targets"] tbody tr');
    expect(await targets.count()).toBe(5);
    expect(await targets.last().textContent()).toMatch(/\/\/web:smoke_test.*Built/s);
    expect(await targets.first().textContent()).toMatch(/\/\/web:windows_only.*Skipped.*incompatible/s);
    // Failing tests first, the flaky one's two attempts, and the failing log opens on the page.
    const tests = page.locator('[data-testid="build-tests"] tbody tr');
    expect(await tests.allTextContents()).toEqual([
      expect.stringMatching(/\/\/web:login_test.*Failed/s),
      expect.stringMatching(/\/\/web:retry_test.*Flaky.*Failed.*attempt 2.*Passed/s),
      expect.stringMatching(/\/\/web:smoke_test.*Passed/s),
    ]);
    await tests.first().locator('[data-testid="test-log-link"]').click();
    await expect.poll(() => page.textContent('[data-testid="test-log"] pre'), { timeout: TIMEOUT }).toBe(FAILING_LOG);
    await shot('invocation-bes-light');
    // A build without BES says how to get it.
    await page.goto(`${api.url}#/invocations/${PLAIN_INVOCATION}`);
    await expect.poll(() => page.textContent('[data-testid="no-bes"]'), { timeout: TIMEOUT }).toContain('--bes_backend=grpc://127.0.0.1:8980');
    expect(await page.locator('[data-testid="build-events"]').count()).toBe(0);
  }, TIMEOUT);

  it('refuses the execution switch without a token, and flips it with one', async () => {
    await nav('settings');
    const sw = page.locator('[data-testid="execution-switch"]');
    await sw.click();
    await expect.poll(() => page.textContent('[data-testid="settings-error"]').catch(() => '')).toContain('token');
    expect(await sw.getAttribute('aria-checked')).toBe('true');
    // Electron hands the token over in the fragment; it is stored and removed from the URL.
    await page.goto(`${api.url}#token=${api.token}`);
    await expect.poll(() => new URL(page.url()).hash).toBe('');
    await nav('settings');
    await expect.poll(() => sw.isEnabled()).toBe(true);
    await sw.click();
    await expect.poll(() => sw.getAttribute('aria-checked')).toBe('false');
    await expect.poll(() => page.textContent('[data-testid="engine-status"]')).toContain('Execution off');
    await shot('settings-light');
    await sw.click();
    await expect.poll(() => sw.getAttribute('aria-checked')).toBe('true');
  }, TIMEOUT);

  it('changes worker slots and the cache budget from Settings, showing the engine’s answer and errors inline', async () => {
    await nav('settings');
    const card = page.locator('[data-testid="engine-settings"]');
    const slots = page.locator('[data-testid="concurrency-input"]');
    const budget = page.locator('[data-testid="budget-input"]');
    const save = page.locator('[data-testid="engine-settings-save"]');
    await expect.poll(() => slots.inputValue()).toBe('4');
    expect(await budget.inputValue()).toBe('20');
    expect(await page.locator('[data-testid="budget-unit"]').inputValue()).toBe('GiB');
    expect(await save.isDisabled()).toBe(true); // nothing changed yet

    // A value the engine would refuse is caught inline before anything is sent.
    await budget.fill('10');
    await page.selectOption('[data-testid="budget-unit"]', 'MiB');
    await expect.poll(() => page.textContent('[data-testid="engine-settings-problem"]').catch(() => '')).toContain('at least 64 MiB');
    expect(await save.isDisabled()).toBe(true);
    await page.selectOption('[data-testid="budget-unit"]', 'GiB');

    await page.click('[data-testid="concurrency-plus"]');
    await page.click('[data-testid="concurrency-plus"]');
    await page.click('[data-testid="concurrency-minus"]');
    expect(await slots.inputValue()).toBe('5');
    expect(await page.locator('[data-testid="engine-settings-problem"]').count()).toBe(0);
    await save.click();
    await expect.poll(() => card.locator('[data-testid="engine-settings-answer"]').textContent().catch(() => '')).toContain('Applied now');
    expect(await card.locator('[data-testid="engine-settings-answer"]').textContent()).toContain('5 worker slots, a cache budget of 10 GiB');
    expect(api.settingsPuts.at(-1)).toEqual({ concurrency: 5, cacheSize: '10GiB' });
    expect(await save.isDisabled()).toBe(true); // the form now shows what runs
    await shot('settings-engine-light');

    // The engine's refusal (here: no token) shows inline, and nothing changes.
    await page.click('text=Forget');
    await page.click('[data-testid="concurrency-minus"]');
    await save.click();
    await expect.poll(() => page.textContent('[data-testid="engine-settings-error"]').catch(() => '')).toContain('token');
    expect(api.settingsPuts).toHaveLength(1);
    await page.fill('[data-testid="token-input"]', api.token);
    await page.click('form.token button[type="submit"]');

    // The rest of the dashboard follows: five worker slots, a 10 GiB budget.
    await nav('workers');
    await expect.poll(() => page.locator('[data-testid="slot"]').count(), { timeout: TIMEOUT }).toBe(5);
    await nav('cache');
    await expect.poll(() => page.textContent('[data-testid="cache-usage"]'), { timeout: TIMEOUT }).toContain('of 10 GiB budget');
  }, TIMEOUT * 2);

  it('changes the invocation history budget from Settings, checking it first', async () => {
    await nav('settings');
    const invocations = page.locator('[data-testid="history-invocations"]');
    const save = page.locator('[data-testid="history-save"]');
    await expect.poll(() => invocations.inputValue(), { timeout: TIMEOUT }).toBe('2000');
    expect(await page.locator('[data-testid="history-days"]').inputValue()).toBe('7');
    expect(await save.isDisabled()).toBe(true);
    await invocations.fill('5');
    await expect.poll(() => page.textContent('[data-testid="history-problem"]').catch(() => '')).toContain('from 10 to 100,000');
    expect(await save.isDisabled()).toBe(true);
    await invocations.fill('500');
    await save.click();
    await expect.poll(() => page.textContent('[data-testid="history-answer"]').catch(() => '')).toContain('Applied now and saved: a history of 500 invocations.');
    expect(api.settingsPuts.at(-1)).toEqual({ invocationHistory: 500 });
    await page.locator('[data-testid="history-settings"]').screenshot({ path: join(SCREENSHOTS, 'fake-settings-history-light.png') });
  }, TIMEOUT);

  it('renders the dark theme', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    await nav('overview');
    await page.waitForTimeout(1500);
    await shot('overview-dark');
    await nav('actions');
    await page.waitForSelector('[data-testid="action-row"]');
    await shot('actions-dark');
    await page.locator('[data-testid="action-row"]').first().click();
    await page.waitForSelector('[data-testid="log"]');
    await shot('detail-dark');
    await page.keyboard.press('Escape');
    await nav('cache');
    await page.waitForSelector('[data-testid="largest-row"]');
    await page.locator('[data-testid="largest-blobs"]').screenshot({ path: join(SCREENSHOTS, 'fake-cache-largest-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
  }, TIMEOUT);

  it('says so when the engine goes away', async () => {
    await nav('overview');
    await api.close();
    await expect.poll(() => page.locator('[data-testid="disconnected"]').count(), { timeout: TIMEOUT }).toBe(1);
    expect(await page.textContent('[data-testid="engine-status"]')).toContain('unreachable');
    // Stale figures stay visible, but the engine is no longer claimed to be serving.
    expect(await page.textContent('[data-testid="hero"]')).toContain('Engine status unknown');
    await shot('disconnected-light');
  }, TIMEOUT);
});
