/**
 * The admin page in real headless Chromium (Debian /usr/bin/chromium via playwright-core, never a
 * downloaded browser): log in, watch a model's inference count change when a study is processed,
 * see results go dead while the PACS (real Orthanc) is down, click "Retry all dead" once it is up
 * and see them sent. Screenshots go to test-output/ (git-ignored).
 */
import * as fs from 'fs';
import * as path from 'path';
import { chromium, Browser, Page } from 'playwright-core';
import { startOrthanc, OrthancHandle } from '../harness/orthanc';
import { freePort } from '../harness/ports';
import { startTestNode, waitFor, TestNode } from '../helpers/node';
import type { BuiltNode } from '../../src/wiring';
import { ADMIN_TOKEN, strokeStudy, stow, tinyModelsDir } from './helpers';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUT = path.resolve(__dirname, '../../test-output');

describe('admin page in Chromium', () => {
  let t: TestNode;
  let node: BuiltNode;
  let browser: Browser;
  let page: Page;
  let pacs: OrthancHandle | undefined;
  let pacsPort: number;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    pacsPort = await freePort(); // nothing listens here until the test starts Orthanc on it
    t = await startTestNode({
      nodeName: 'stroke-node-test',
      admin: { token: ADMIN_TOKEN },
      inference: { modelsDir: tinyModelsDir() },
      destinations: [{ name: 'pacs', type: 'dimse', host: '127.0.0.1', port: pacsPort, calledAeTitle: 'ORTHANC' }],
      routes: [{ name: 'default', quietPeriodSeconds: 0.5, destinations: ['pacs'] }],
      egress: { maxAttempts: 1, initialBackoffSeconds: 1, maxBackoffSeconds: 2 },
    });
    node = t.node as BuiltNode;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
  });

  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    await pacs?.stop();
  });

  const text = (testid: string) => page.getByTestId(testid).textContent();
  async function waitText(testid: string, want: string, timeoutMs = 20000): Promise<void> {
    await waitFor(async () => (await page.getByTestId(testid).count()) > 0 && (await text(testid))?.trim() === want, timeoutMs, `${testid} = ${want}`);
  }

  test('login refuses a wrong token, accepts the right one', async () => {
    await page.goto(`${t.httpUrl}/admin/`);
    expect(new URL(page.url()).pathname).toBe('/admin/login');
    await page.fill('#token', 'definitely-not-the-token');
    await page.click('#login-submit');
    await page.locator('#login-error').waitFor({ state: 'visible' });
    expect(await page.locator('#login-error').textContent()).toMatch(/wrong token/i);
    await page.screenshot({ path: path.join(OUT, 'admin-login.png') });
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#login-submit');
    await page.waitForURL(`${t.httpUrl}/admin/`);
    await waitText('model-inferences-shaspec-realbg', '0');
    expect(await text('model-status-shaspec-realbg')).toBe('ready');
    expect(await page.locator('#node-name').textContent()).toBe('stroke-node-test');
    // the session cookie is not readable from scripts
    expect(await page.evaluate('document.cookie')).toBe('');
  });

  test('a processed study raises the inference count and appears in recent studies; results go dead while the PACS is down', async () => {
    const s = strokeStudy();
    expect(await stow(node.app, s.files)).toBe(200);
    await waitText('model-inferences-shaspec-realbg', '1');
    await page.getByTestId('study-row-1').waitFor();
    const row = (await page.getByTestId('study-row-1').textContent()) ?? '';
    expect(row).toContain('DWI + ADC');
    expect(row).toContain('lesion');
    expect(row).toContain('shaspec-realbg');
    expect(row).not.toContain(s.study.patientName);
    // maxAttempts 1, PACS down: both results (SEG, SR) are dead
    await waitText('dest-dead-pacs', '2');
    expect(await text('dest-sent-pacs')).toBe('0');
    await page.getByTestId('study-row-1').getByText('0/2 sent · 2 dead').waitFor();
    expect(await page.getByTestId('outbox-row-1').getAttribute('data-state')).toBe('dead');
    await page.screenshot({ path: path.join(OUT, 'admin-console-pacs-down.png'), fullPage: true });
  });

  test('retry all dead sends them once the PACS is up', async () => {
    pacs = await startOrthanc({ dicomPort: pacsPort, aet: 'ORTHANC' });
    await page.getByRole('button', { name: /Retry all dead \(2\)/ }).click();
    await waitText('dest-sent-pacs', '2');
    expect(await text('dest-dead-pacs')).toBe('0');
    await page.getByTestId('study-row-1').getByText('2/2 sent').waitFor();
    const job = (await node.queue.get(1))!;
    const outputs = (job.outcome as { outputs: { sopInstanceUid: string }[] }).outputs.map((o) => o.sopInstanceUid);
    expect((await pacs.listSopInstanceUids()).sort()).toEqual([...outputs].sort());
    await page.screenshot({ path: path.join(OUT, 'admin-console.png'), fullPage: true });
  });

  test('pause and resume from the page', async () => {
    await page.click('#btn-pause');
    await page.locator('#banner-paused').waitFor({ state: 'visible' });
    expect(node.paused).toBe(true);
    await page.click('#btn-resume');
    await page.locator('#banner-paused').waitFor({ state: 'hidden' });
    expect(node.paused).toBe(false);
  });

  test('the page ran without script or CSP errors', () => {
    expect(consoleErrors.filter((e) => !/401|Unauthorized/.test(e))).toEqual([]);
  });
});
