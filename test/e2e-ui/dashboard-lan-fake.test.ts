// The dashboard as a browser on another machine sees a Kiln in LAN mode (fake API,
// test/e2e-ui/fake-api.ts with lan: true): every request needs the token, the live
// stream opens with a single-use ticket, and the LAN views work: the TLS indicator,
// instance names, the LAN switch, access tokens and the Connect view's lines.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { chromiumMissing, launchBrowser, SCREENSHOTS, type TestBrowser } from './browser';
import { startFakeApi, type FakeApi } from './fake-api';
import { ensureRendererBuilt } from './renderer-build';

const TIMEOUT = 60_000;

describe.skipIf(chromiumMissing)(`dashboard in LAN mode (fake API)${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let api: FakeApi;
  let browser: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    await ensureRendererBuilt();
    api = await startFakeApi({ history: 300, concurrency: 4, lan: true });
    browser = await launchBrowser('light');
    page = await browser.context.newPage();
    page.setDefaultTimeout(TIMEOUT);
  }, TIMEOUT * 3);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
  });

  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);
  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `lan-${name}.png`) });

  it('streams live events with a ticket, never with the token in a URL', async () => {
    await page.goto(`${api.url}#token=${api.token}`);
    await expect.poll(() => page.textContent('[data-testid="engine-status"]'), { timeout: TIMEOUT }).toContain('Serving');
    // Live: an action started now shows up in the worker slots only through the event stream.
    api.startAction(4);
    await expect.poll(() => page.textContent('[data-testid="stat-util"]'), { timeout: TIMEOUT }).toMatch(/[1-4] of 4 slots busy/);
    expect(api.eventRequests.length).toBeGreaterThan(0);
    expect(api.eventRequests.every((u) => /[?&]ticket=kev_/.test(u))).toBe(true);
    expect(api.tokenInUrl).toEqual([]);
  }, TIMEOUT * 2);

  it('shows TLS and the instance names on the overview and in the sidebar', async () => {
    await expect.poll(() => page.textContent('[data-testid="overview-tls"]')).toContain('TLS');
    expect(await page.getAttribute('[data-testid="tls-badge"]', 'data-tls')).toBe('true');
    expect(await page.textContent('[data-testid="overview-instances"]')).toContain('default, ci');
    await page.waitForTimeout(1500);
    await shot('overview');
  }, TIMEOUT);

  it('has an instance column in the action list', async () => {
    await nav('actions');
    await page.waitForSelector('[data-testid="action-instance"]');
    const names = await page.locator('[data-testid="action-instance"]').allTextContents();
    expect(names).toContain('ci');
    expect(names).toContain('default');
    await shot('actions');
  }, TIMEOUT);

  it('flips the LAN switch and says a restart is needed', async () => {
    await nav('settings');
    const sw = page.locator('[data-testid="lan-switch"]');
    await expect.poll(() => sw.getAttribute('aria-checked')).toBe('true');
    expect(await page.locator('[data-testid="restart-required"]').count()).toBe(0);
    await sw.click();
    await expect.poll(() => sw.getAttribute('aria-checked')).toBe('false');
    expect(await page.textContent('[data-testid="restart-required"]')).toBe('Restart required');
    expect(await page.textContent('[data-testid="lan-note"]')).toContain('LAN mode turns off when Kiln restarts');
    expect(await page.textContent('[data-testid="settings-tls"]')).toContain('TLS');
  }, TIMEOUT);

  it('makes a token, shows it once with its Bazel flag, and revokes one after confirmation', async () => {
    await expect.poll(() => page.locator('[data-testid="token-row"]').count()).toBe(1);
    await page.fill('[data-testid="token-name"]', 'bad name');
    await expect.poll(() => page.textContent('[data-testid="token-name-problem"]').catch(() => '')).toContain('letters, digits');
    expect(await page.isDisabled('[data-testid="token-create"]')).toBe(true);
    await page.fill('[data-testid="token-name"]', 'bob');
    await page.click('[data-testid="token-create"]');
    const value = (await page.waitForSelector('[data-testid="token-value"]').then((e) => e.textContent())) ?? '';
    expect(value).toMatch(/^kiln_fake/);
    expect(await page.textContent('[data-testid="token-flag"]')).toBe(`--remote_header=authorization="Bearer ${value}"`);
    await expect.poll(() => page.locator('[data-testid="token-row"]').count()).toBe(2);
    await page.locator('[data-testid="tokens-panel"]').scrollIntoViewIfNeeded();
    await shot('settings-token-created');

    // Revoking asks first; Cancel keeps it.
    const alice = page.locator('[data-testid="token-row"][data-name="alice"]');
    await alice.locator('[data-testid="token-revoke"]').click();
    await page.click('text=Cancel');
    expect(await page.locator('[data-testid="token-row"]').count()).toBe(2);
    await alice.locator('[data-testid="token-revoke"]').click();
    await shot('settings-revoke-confirm');
    await alice.locator('[data-testid="token-revoke-confirm"]').click();
    await expect.poll(() => page.locator('[data-testid="token-row"]').count()).toBe(1);
    expect(await page.getAttribute('[data-testid="token-row"]', 'data-name')).toBe('bob');
    // Shown once: leaving the view forgets the value.
    await nav('overview');
    await nav('settings');
    await page.waitForSelector('[data-testid="token-row"]');
    expect(await page.locator('[data-testid="token-value"]').count()).toBe(0);
  }, TIMEOUT);

  it("shows the engine's connect lines, a CA download, and puts a fresh token in", async () => {
    await nav('connect');
    await expect
      .poll(() => page.textContent('[data-testid="bazelrc"]'))
      .toBe(
        [
          'build --remote_executor=grpcs://192.168.1.20:8980',
          'build --tls_certificate=/home/kiln/.local/share/kiln/tls/ca.pem',
          'build --remote_header=authorization="Bearer TOKEN"',
          'build --jobs=8',
          '',
        ].join('\n'),
      );
    expect(await page.getAttribute('[data-testid="ca-download"]', 'href')).toBe('/api/tls/ca.pem');
    const ca = await page.evaluate(async () => (await fetch('/api/tls/ca.pem')).text());
    expect(ca).toContain('BEGIN CERTIFICATE');
    await page.selectOption('[data-testid="connect-instance"]', 'ci');
    expect(await page.textContent('[data-testid="bazelrc"]')).toContain('build --remote_instance_name=ci\n');
    await page.click('[data-testid="connect-make-token"]');
    await expect.poll(() => page.textContent('[data-testid="bazelrc"]')).toMatch(/Bearer kiln_fake\d+x+"\n/);
    expect(await page.textContent('[data-testid="connect-token-made"]')).toContain('connect-');
    await shot('connect');
  }, TIMEOUT);
});
