/**
 * The operator's views of the admin page in real headless Chromium (Debian /usr/bin/chromium via
 * playwright-core): the alerts banner while a destination refuses (nothing listens on its port) and
 * after it recovers (a real Orthanc started on that port), the outbox grouped by study x destination
 * with "Retry all failed", the study drill-down (every series with its classification and reason,
 * stage timings, objects and where each went), a re-sent study counted as duplicates, an operator's
 * reprocess, a study with nothing usable, and the page at 1280 x 800. Screenshots of each view go
 * to test-output/screenshots/ (git-ignored) for a reviewer.
 */
import * as fs from 'fs';
import * as path from 'path';
import { chromium, Browser, Page } from 'playwright-core';
import { startOrthanc, OrthancHandle } from '../harness/orthanc';
import { freePort } from '../harness/ports';
import { startTestNode, waitFor, TestNode } from '../helpers/node';
import { newStudyContext, writeSeries } from '../helpers/series-writer';
import type { BuiltNode } from '../../src/wiring';
import { ADMIN_TOKEN, strokeStudy, stow, tinyModelsDir } from './helpers';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.resolve(__dirname, '../../test-output/screenshots');

describe('operator views in Chromium', () => {
  let t: TestNode;
  let node: BuiltNode;
  let browser: Browser;
  let page: Page;
  let pacs: OrthancHandle | undefined;
  let pacsPort: number;
  const consoleErrors: string[] = [];
  const study = strokeStudy();
  let studyRef = '';

  beforeAll(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    pacsPort = await freePort(); // nothing listens here until the test starts Orthanc on it: connections are refused
    t = await startTestNode({
      nodeName: 'stroke-node-ops',
      admin: { token: ADMIN_TOKEN },
      inference: { modelsDir: tinyModelsDir() },
      destinations: [{ name: 'pacs', type: 'dimse', host: '127.0.0.1', port: pacsPort, calledAeTitle: 'ORTHANC' }],
      routes: [{ name: 'default', quietPeriodSeconds: 0.5, destinations: ['pacs'] }],
      // failed rows wait 60 s before the next attempt: they stay "failed" (not dead) while the test looks
      egress: { maxAttempts: 5, initialBackoffSeconds: 60, maxBackoffSeconds: 120 },
    });
    node = t.node as BuiltNode;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    await page.goto(`${t.httpUrl}/admin/login`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#login-submit');
    await page.waitForURL(`${t.httpUrl}/admin/`);
  });

  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    await pacs?.stop();
  });

  const shot = (name: string, fullPage = true) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });

  test('a refusing destination raises the alerts banner; results wait as failed rows, grouped by study and destination', async () => {
    expect(await page.locator('#alerts').isHidden()).toBe(true);
    expect(await stow(node.app, study.files)).toBe(200);
    await waitFor(async () => (await node.queue.counts()).done === 1, 30000, 'study processed');
    studyRef = (await page.getByTestId('study-row-1').getAttribute('data-study', { timeout: 10000 }))!;
    expect(studyRef).toMatch(/^[0-9a-f]{10}$/);
    const alert = page.getByTestId('alert-destination-pacs');
    await alert.waitFor({ timeout: 20000 });
    expect(await alert.textContent()).toMatch(/Destination pacs is failing: \d+ failed attempts? in a row .*ECONNREFUSED|Destination pacs is failing/);
    expect(await alert.textContent()).toMatch(/circuit open/);
    // one group row for SEG + SR to pacs, expandable to its two rows
    const group = page.getByTestId(`outbox-group-${studyRef}-pacs`);
    await group.waitFor();
    await waitFor(async () => (await group.getAttribute('data-state')) === 'failed', 15000, 'group failed');
    expect(await page.locator('#outbox-table tr.group-row').count()).toBe(1);
    const cells = await group.locator('td').allTextContents();
    expect(cells.slice(1, 8)).toEqual([studyRef, 'pacs', 'SEG, SR', '0', '2', '0', '0 / 2']);
    expect(await page.locator('tr.group-sub').isHidden()).toBe(true);
    await group.click();
    await page.locator('tr.group-sub').waitFor({ state: 'visible' });
    expect(await page.locator('tr.group-sub [data-testid^="outbox-row-"][data-state="failed"]').count()).toBe(2);
    await expect(page.getByTestId('btn-retry-all-failed').textContent()).resolves.toBe('Retry all failed (2)');
    await page.locator('#alerts').scrollIntoViewIfNeeded();
    await shot('alerts-destination-failing', false);
    await page.locator('#outbox').scrollIntoViewIfNeeded();
    await shot('outbox-grouped');
  });

  test('the drill-down shows every series with its classification and reason, the timings, and where each object went', async () => {
    await page.getByTestId('study-row-1').locator('td').nth(1).click();
    await page.waitForURL(new RegExp(`#/studies/${studyRef}$`));
    const detail = page.getByTestId('study-detail');
    await detail.waitFor({ state: 'visible' });
    await page.getByTestId('sd-series-1').waitFor();
    const job = (await node.queue.get(1))!;
    const outcome = job.outcome as { availability: { series: { description: string; classification: string; reason: string; usable: boolean }[] }; timingsMs: Record<string, number> };
    const rows = page.locator('[data-testid^="sd-series-1-"]');
    expect(await rows.count()).toBe(outcome.availability.series.length);
    expect(outcome.availability.series.length).toBe(2);
    for (let i = 0; i < outcome.availability.series.length; i++) {
      const s = outcome.availability.series[i];
      const cells = await page.getByTestId(`sd-series-1-${i}`).locator('td').allTextContents();
      expect(cells[0]).toBe(s.description);
      expect(cells[1]).toBe(s.classification);
      expect(cells[2]).toBe(s.usable ? 'usable' : 'not usable');
      expect(cells[4]).toBe(s.reason);
      expect(s.reason.length).toBeGreaterThan(5);
    }
    const classes = await rows.evaluateAll((trs) => trs.map((tr) => tr.children[1].textContent));
    expect(classes.sort()).toEqual(['ADC', 'DWI']);
    expect(await page.getByTestId('sd-series-1-0').locator('td').nth(3).textContent().then((x) => x ?? '')).toMatch(/1000|–/);
    expect(await page.getByTestId('sd-decision-1').textContent()).toBe('lesion');
    // the route: taken at arrival, and how the rules read the stored headers (one route without conditions)
    expect(await page.getByTestId('sd-route-summary').textContent()).toMatch(/^Taken: default .*route default\.$/);
    expect(await page.getByTestId('sd-route-default').getAttribute('data-ok')).toBe('yes');
    // the tasks: each run or not, with its reason (when the processor records tasks)
    const tasks = (job.outcome as { tasks?: { task: string; run: boolean; reason: string }[] }).tasks;
    if (tasks) {
      expect(await page.locator('[data-testid^="sd-task-1-"]').count()).toBe(tasks.length);
      for (let i = 0; i < tasks.length; i++) {
        const row = page.getByTestId(`sd-task-1-${i}`);
        expect(await row.getAttribute('data-ran')).toBe(tasks[i].run ? 'yes' : 'no');
        expect((await row.locator('td').allTextContents())[3]).toContain(tasks[i].reason);
      }
      expect(tasks.find((x) => x.task === 'stroke-mr')?.run).toBe(true);
    }
    // one row per stage the processor timed
    expect(await page.locator('[data-testid^="sd-timing-1-"]').count()).toBe(Object.keys(outcome.timingsMs).length);
    expect(await page.getByTestId('sd-timing-1-inference').isVisible()).toBe(true);
    // SEG and SR to pacs: failed, with the connection error
    const objects = page.locator('[data-testid^="sd-object-1-"]');
    expect(await objects.count()).toBe(2);
    const objText = (await objects.allTextContents()).join('\n');
    expect(objText).toMatch(/SEG/);
    expect(objText).toMatch(/SR/);
    expect(await objects.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-state')))).toEqual(['failed', 'failed']);
    expect(objText).toMatch(/pacs/);
    await shot('study-drilldown');
  });

  test('retry all failed sends them once the PACS is up; the banner goes when the destination recovers', async () => {
    pacs = await startOrthanc({ dicomPort: pacsPort, aet: 'ORTHANC' });
    await page.getByTestId('btn-retry-all-failed').click();
    await page.getByTestId('alert-destination-pacs').waitFor({ state: 'detached', timeout: 20000 });
    await page.locator('#alerts').waitFor({ state: 'hidden' });
    await page.locator('#outbox-table tr.empty').waitFor();
    await page.getByTestId('study-row-1').getByText('2/2 sent').waitFor();
    // the drill-down (still open) shows them sent
    await waitFor(async () => (await page.locator('[data-testid^="sd-object-1-"][data-state="sent"]').count()) === 2, 10000, 'objects sent in the drill-down');
    const outputs = ((await node.queue.get(1))!.outcome as { outputs: { sopInstanceUid: string }[] }).outputs.map((o) => o.sopInstanceUid);
    expect((await pacs.listSopInstanceUids()).sort()).toEqual([...outputs].sort());
    await shot('after-retry-all-failed');
  });

  test('a re-sent study is counted as duplicates (not processed again) and shown on the table and the drill-down', async () => {
    expect(await stow(node.app, study.files)).toBe(200);
    await page.getByTestId('study-dup-1').waitFor({ timeout: 10000 });
    expect(await page.getByTestId('study-dup-1').textContent()).toBe(`×${study.files.length}`);
    expect(await page.getByTestId('study-dup-1').getAttribute('title')).toMatch(/^re-sent: 6 instance\(s\) arrived again/);
    await page.getByTestId('sd-duplicates').waitFor();
    expect(await page.getByTestId('sd-duplicates').textContent()).toContain(`${study.files.length} instance(s) arrived again`);
    await new Promise((r) => setTimeout(r, 1200)); // longer than the quiet period: no new job
    expect((await node.queue.list()).length).toBe(1);
    expect(node.store.studyDuplicates(study.study.studyInstanceUid)).toBe(study.files.length);
  });

  test('reprocess from the drill-down runs the study again as a new job whose outcome records the manual reprocess', async () => {
    await page.getByTestId('btn-reprocess').click();
    await waitFor(async () => (await node.queue.get(2))?.state === 'done', 30000, 'reprocessed job done');
    const j2 = (await node.queue.get(2))!;
    expect(j2.handoff).toBe('operator-reprocess');
    expect(j2.previousJobId).toBe(1);
    expect((j2.outcome as { manualReprocess?: { previousJobId: number } }).manualReprocess).toMatchObject({ previousJobId: 1 });
    await page.getByTestId('study-manual-2').waitFor();
    await page.getByTestId('sd-job-2').waitFor();
    expect(await page.getByTestId('sd-job-2').locator('summary').textContent()).toContain('manual reprocess');
    // the earlier job and its outcome stay
    expect((await node.queue.get(1))!.state).toBe('done');
    await page.getByTestId('study-detail').scrollIntoViewIfNeeded();
    await shot('study-reprocessed');
  });

  test('a study with nothing usable shows the series reasons, and its reason says "nothing usable" once', async () => {
    const ctx = newStudyContext();
    // a CT scout alone: no series the node can use
    const scout = writeSeries(
      {
        kind: 'CT',
        rows: 16,
        columns: 16,
        slices: 1,
        pixelSpacing: [2, 2],
        sliceThickness: 5,
        sliceSpacing: 5,
        imageOrientationPatient: [1, 0, 0, 0, 1, 0],
        imagePositionPatientFirst: [0, 0, 0],
        data: new Int16Array(16 * 16).fill(40),
        imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'],
        seriesDescription: '<img src=x onerror=alert(1)>Scout', // shown as text, never as markup
        seriesNumber: 1,
      },
      ctx,
    );
    expect(await stow(node.app, scout.files.map((f) => f.part10))).toBe(200);
    await waitFor(async () => (await node.queue.counts()).not_processed === 1, 30000, 'not processed');
    const j = (await node.queue.list({ states: ['not_processed'] }))[0];
    await page.getByTestId(`study-row-${j.id}`).locator('td').nth(1).click();
    await page.getByTestId(`sd-series-${j.id}-0`).waitFor();
    const cells = await page.getByTestId(`sd-series-${j.id}-0`).locator('td').allTextContents();
    expect(cells[0]).toBe('<img src=x onerror=alert(1)>Scout');
    expect(await page.locator('#study-detail img').count()).toBe(0);
    expect(cells[4]).toMatch(/LOCALIZER/);
    expect(cells[2]).toBe('not usable');
    expect(cells[4].length).toBeGreaterThan(5);
    const reason = (await page.getByTestId(`sd-reason-${j.id}`).textContent()) ?? '';
    expect(reason).toMatch(/^nothing usable: /);
    expect(reason).not.toMatch(/nothing usable: nothing usable/);
    const rowText = (await page.getByTestId(`study-row-${j.id}`).textContent()) ?? '';
    expect(rowText).not.toMatch(/nothing usable: nothing usable/);
    await shot('study-nothing-usable');
  });

  test('the disk-check summary shows its time as a time, not a raw epoch', async () => {
    await page.getByTestId('hk-row-disk-check').getByRole('button', { name: 'Run now' }).click();
    await waitFor(async () => /level ok/.test((await page.getByTestId('hk-row-disk-check').textContent()) ?? ''), 10000, 'disk-check ran');
    const summary = (await page.getByTestId('hk-row-disk-check').locator('td').nth(3).textContent()) ?? '';
    expect(summary).toMatch(/^at \d\d:\d\d:\d\d · freeMb \d+/);
    expect(summary).not.toMatch(/\d{12,}/);
  });

  test('at 1280 x 800 the studies table fits without horizontal scrolling', async () => {
    await page.goto(`${t.httpUrl}/admin/#studies`);
    await page.getByTestId('study-row-1').waitFor();
    const fit = (await page.evaluate(
      `(() => { const w = document.querySelector('#studies .table-wrap'); return { scroll: w.scrollWidth, client: w.clientWidth, doc: document.documentElement.scrollWidth, vw: window.innerWidth }; })()`,
    )) as { scroll: number; client: number; doc: number; vw: number };
    await shot('studies-1280x800', false);
    if (fit.scroll > fit.client) {
      const widths = await page.evaluate(`Array.from(document.querySelectorAll('#studies-table thead th')).map((th) => th.textContent + ':' + Math.round(th.getBoundingClientRect().width)).join(' ')`);
      throw new Error(`studies table ${fit.scroll} px wide in ${fit.client} px: ${widths}`);
    }
    expect(fit.scroll).toBeLessThanOrEqual(fit.client);
    expect(fit.doc).toBeLessThanOrEqual(fit.vw);
  });

  test('the page ran without script or CSP errors', () => {
    expect(consoleErrors.filter((e) => !/401|Unauthorized/.test(e))).toEqual([]);
  });
});
