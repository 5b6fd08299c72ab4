// The invocation pages in Chromium against a real engine whose executor the
// test drives (FakeExecutor): a deep link to an invocation opened before its
// build starts shows its actions arrive live and its timeline grow; a failed
// action opens on stderr; a GetActionResult hit counts as cached; uptime ticks.
// Screenshots go to test-output/screenshots/invocations-*.png.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { REQUEST_METADATA_HEADER } from '../../engine/grpc/services';
import { reapi } from '../../engine/proto';
import { grpc, startTestEngine, toWireDigest, type TestEngine, type TestEngineOptions } from '../helpers';
import { FakeExecutor } from '../execution/fake-executor';
import { executeRequest, uploadAction } from '../execution/harness';
import { chromiumMissing, launchBrowser, SCREENSHOTS, type TestBrowser } from './browser';
import { ensureRendererBuilt } from './renderer-build';

const TIMEOUT = Number(process.env.KILN_UI_TIMEOUT ?? 90_000);
const INV = '5b0c1d2e-0000-4000-8000-00000000e2e1';

function meta(mnemonic: string, target: string): grpc.Metadata {
  const m = new grpc.Metadata();
  const bytes = reapi.RequestMetadata.encode(
    reapi.RequestMetadata.create({ toolInvocationId: INV, actionMnemonic: mnemonic, targetId: target, toolDetails: { toolName: 'bazel', toolVersion: '7.4.0' } }),
  ).finish();
  m.set(REQUEST_METADATA_HEADER, Buffer.from(bytes));
  return m;
}

describe.skipIf(chromiumMissing)(`invocation pages (real engine, driven executor)${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let t: TestEngine;
  let browser: TestBrowser;
  let page: Page;
  const executor = new FakeExecutor();
  const calls: Promise<unknown>[] = [];

  beforeAll(async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    await ensureRendererBuilt();
    t = await startTestEngine({ executor, config: { concurrency: 2 } } as TestEngineOptions);
    browser = await launchBrowser('light');
    page = await browser.context.newPage();
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    page.setDefaultTimeout(TIMEOUT);
  }, TIMEOUT * 2);

  afterAll(async () => {
    for (const r of executor.runs) r.finish({ exitCode: 0 });
    await Promise.allSettled(calls);
    await browser?.close();
    await t?.stop();
  });

  const base = () => t.engine.httpUrl.replace(/\/$/, '');
  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `invocations-${name}.png`), fullPage: true });
  const barTitle = (id: string) => page.locator(`[data-testid="timeline"] rect.bar[data-action="${id}"] title`).textContent();

  it('opens an invocation by its link before the build, then shows its actions and timeline live', async () => {
    await page.goto(`${base()}/#/invocations/${INV}`);
    await page.waitForSelector('[data-testid="invocation-id"]');
    // Nothing yet: the engine does not know the invocation.
    await expect.poll(() => page.textContent('[role="alert"]').catch(() => ''), { timeout: TIMEOUT }).toContain('no invocation');

    const ok = await uploadAction(t.clients, { argv: ['/bin/echo', 'ok'] });
    const bad = await uploadAction(t.clients, { argv: ['/bin/false'] });
    calls.push(t.clients.execution.execute.collect(executeRequest(ok), meta('Genrule', '//app:ok')));
    calls.push(t.clients.execution.execute.collect(executeRequest(bad), meta('CppCompile', '//app:bad')));
    const runs = await executor.started(2);
    const runOk = runs.find((r) => r.action.command.arguments.includes('ok'))!;
    const runBad = runs.find((r) => r.action.command.arguments.includes('/bin/false'))!;

    const rows = page.locator('[data-testid="invocation-actions"] [data-action]');
    await expect.poll(() => rows.count(), { timeout: TIMEOUT }).toBe(2);
    await expect.poll(() => page.locator('[data-testid="timeline"] rect.bar').count(), { timeout: TIMEOUT }).toBe(2);
    const okId = await page.locator('[data-testid="invocation-actions"] [data-action]', { hasText: '//app:ok' }).getAttribute('data-action');
    const before = await barTitle(okId!);
    // A running action's bar keeps growing with the clock.
    await expect.poll(() => barTitle(okId!), { timeout: TIMEOUT }).not.toBe(before);
    await expect.poll(() => page.textContent('[data-testid="invocation-counts"]'), { timeout: TIMEOUT }).toContain('2 · 0');
    await shot('page-running');

    runOk.finish({ exitCode: 0 });
    runBad.finish({ exitCode: 1 });
    await Promise.allSettled(calls);
    // A cache hit of the same invocation is an action too.
    await t.clients.actionCache.get({ actionDigest: toWireDigest(ok) }, meta('Genrule', '//app:ok'));
    await expect.poll(() => rows.count(), { timeout: TIMEOUT }).toBe(3);
    const counts = page.locator('[data-testid="invocation-counts"]');
    await expect.poll(async () => (await counts.textContent())?.replace(/\s+/g, ' '), { timeout: TIMEOUT }).toMatch(/Executed ?2 Cached ?1 Failed ?1/);
    await shot('page-finished');
  }, TIMEOUT * 2);

  it('opens a failed action on stderr, from a link that names it', async () => {
    const badId = await page.locator('[data-testid="invocation-actions"] [data-action]', { hasText: '//app:bad' }).getAttribute('data-action');
    await page.goto(`${base()}/#/invocations/${INV}/actions/${badId}`);
    await page.waitForSelector('[data-testid="detail"]');
    await expect.poll(() => page.getAttribute('[data-testid="tab-stderr"]', 'aria-selected'), { timeout: TIMEOUT }).toBe('true');
    // The drawer links back to its invocation.
    expect(await page.getAttribute('[data-testid="detail-invocation"]', 'href')).toBe(`#/invocations/${INV}`);
    await shot('detail-failed');
    await page.keyboard.press('Escape');
    await expect.poll(() => page.evaluate(() => location.hash), { timeout: TIMEOUT }).toBe(`#/invocations/${INV}`);
  }, TIMEOUT);

  it('keeps focus inside the action drawer and gives it back to the row that opened it', async () => {
    await page.goto(`${base()}/#/invocations/${INV}`);
    const row = page.locator('[data-testid="invocation-actions"] button[data-action]').first();
    await row.waitFor({ timeout: TIMEOUT });
    const rowId = await row.getAttribute('data-action');
    await row.focus();
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-testid="detail"]');
    for (let i = 0; i < 25; i++) {
      await page.keyboard.press(i % 5 === 4 ? 'Shift+Tab' : 'Tab');
      expect(await page.evaluate(() => !!document.activeElement?.closest('[data-testid="detail"]')), `after ${i + 1} presses`).toBe(true);
    }
    await page.keyboard.press('Escape');
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute('data-action')), { timeout: TIMEOUT }).toBe(rowId);
  }, TIMEOUT);

  it('lists the invocation with its true counts, and the uptime keeps counting', async () => {
    await page.goto(`${base()}/#/invocations`);
    const row = page.locator(`[data-testid="invocations"] tr[data-invocation="${INV}"]`);
    await row.waitFor({ timeout: TIMEOUT });
    const cells = await row.locator('td').allTextContents();
    expect(cells.slice(3, 6)).toEqual(['2', '1', '1']);
    expect(cells[6]).toContain('//app:ok');
    await shot('list');

    await page.click('nav [data-view="overview"]');
    expect(await page.evaluate(() => location.hash)).toBe('#/overview');
    const subtitle = () => page.locator('header p.muted').first().textContent();
    await expect.poll(subtitle, { timeout: TIMEOUT }).toContain('up ');
    const first = await subtitle();
    await expect.poll(subtitle, { timeout: TIMEOUT }).not.toBe(first);
  }, TIMEOUT);

  it('tells a browser user where the dashboard token is, and how to make an access token', async () => {
    await page.goto(`${base()}/#/settings`);
    const help = (await page.textContent('[data-testid="token-help"]')) ?? '';
    expect(help).toContain('{data-dir}/http-token');
    expect(help).toContain('kiln token add NAME');
  }, TIMEOUT);
});
