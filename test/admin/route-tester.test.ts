/**
 * Routing rule tester (issue 19): POST /admin/api/routes/test on a stored study and on pasted headers (route and
 * every condition, tasks and why), its auth, and the "Route tester" panel in real headless Chromium showing the
 * route a stored test study takes (screenshot in test-output/screenshots/, git-ignored).
 */
import * as fs from 'fs';
import * as path from 'path';
import request from 'supertest';
import { chromium, Browser, Page } from 'playwright-core';
import { startTestNode, waitFor, TestNode } from '../helpers/node';
import { ref } from '../../src/util/log';
import { ADMIN_TOKEN, strokeStudy, stow, tinyModelsDir } from './helpers';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.resolve(__dirname, '../../test-output/screenshots');
const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };

let t: TestNode;
let studyUid: string;

beforeAll(async () => {
  t = await startTestNode({
    admin: { token: ADMIN_TOKEN },
    inference: { modelsDir: tinyModelsDir() },
    routes: [
      { name: 'ct-night', match: { all: [{ field: 'Modality', equals: 'CT' }, { timeOfDay: { from: '18:00', to: '07:00' } }] }, quietPeriodSeconds: 0.5 },
      {
        name: 'neuro-mr',
        match: { all: [{ field: 'Modality', equals: 'MR' }, { field: 'SeriesDescription', matches: 'dwi|diff' }] },
        tasks: ['stroke-mr', { task: 'brain-tumour-mr', when: { present: ['T1C'] } }],
        quietPeriodSeconds: 0.5,
      },
      { name: 'everything-else', quietPeriodSeconds: 0.5 },
    ],
  });
  const s = strokeStudy();
  studyUid = s.study.studyInstanceUid;
  // the DWI series first, then the ADC: the route is chosen at arrival on the series seen so far (docs/routing.md),
  // so the DWI (SeriesDescription matches neuro-mr's rule) must be seen first for the study to take neuro-mr
  expect(await stow(t.node.app, s.dwi.files.map((f) => f.part10))).toBe(200);
  expect(await stow(t.node.app, s.adc.files.map((f) => f.part10))).toBe(200);
  await waitFor(async () => (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length >= 1, 60000, 'study processed');
}, 90000);

afterAll(async () => {
  await t?.stop();
});

describe('API', () => {
  test('a stored study pinned at arrival to a later route than the whole study matches now: the tester says both', async () => {
    const s = strokeStudy();
    expect(await stow(t.node.app, s.adc.files.map((f) => f.part10))).toBe(200); // ADC only: neuro-mr's rule fails -> everything-else
    await waitFor(async () => (await t.node.queue.list()).some((j) => j.studyUid === s.study.studyInstanceUid), 30000, 'job of the ADC-first study');
    expect(await stow(t.node.app, s.dwi.files.map((f) => f.part10))).toBe(200);
    const res = await request(t.node.app).post('/admin/api/routes/test').set(auth).send({ studyInstanceUid: s.study.studyInstanceUid });
    expect(res.status).toBe(200);
    expect(res.body.route).toBe('neuro-mr');
    expect(res.body.takenRoute).toBe('everything-else');
    expect(res.body.routeNote).toMatch(/arrival pinned route "everything-else" .* the rules now give "neuro-mr"/);
  });

  test('a stored study: the route it takes, each condition, and the tasks from its last processing', async () => {
    const res = await request(t.node.app).post('/admin/api/routes/test').set(auth).send({ studyInstanceUid: studyUid });
    expect(res.status).toBe(200);
    const r = res.body;
    expect(r.source).toBe('stored study');
    expect(r.studyRef).toBe(ref(studyUid));
    expect(r.route).toBe('neuro-mr');
    expect(r.facts.series.map((s: { SeriesDescription: string }) => s.SeriesDescription).sort()).toEqual(['ADC', 'DWI b1000 TRACEW']);
    expect(r.routes.map((e: { route: string; ok: boolean }) => [e.route, e.ok])).toEqual([
      ['ct-night', false],
      ['neuro-mr', true],
      ['everything-else', true],
    ]);
    const neuro = r.routes[1].checks;
    expect(neuro[0]).toEqual({ path: 'routes.1.match.all.0', field: 'Modality', operator: 'equals', expected: 'MR', actual: ['MR'], ok: true });
    expect(neuro[1]).toMatchObject({ field: 'SeriesDescription', operator: 'matches', expected: 'dwi|diff', ok: true });
    expect(r.tasks.availabilityFrom).toMatch(/its last processing \(job \d+\)/);
    expect(r.tasks.available).toEqual(['DWI', 'ADC']);
    const d = Object.fromEntries(r.tasks.decisions.map((x: { task: string }) => [x.task, x]));
    expect(d['stroke-mr']).toMatchObject({ run: true, listed: true });
    expect(d['brain-tumour-mr']).toMatchObject({ run: false, listed: true, reason: expect.stringMatching(/condition for brain-tumour-mr does not hold: content present \["T1C"\]/) });
    expect(d['stroke-ct']).toMatchObject({ run: false, listed: false });
    // the job itself took the same route, and its outcome records every task decision
    const job = (await t.node.queue.list()).filter((j) => j.studyUid === studyUid).sort((a, b) => b.id - a.id)[0];
    expect(job.route).toBe('neuro-mr');
    expect(r.takenRoute).toBe('neuro-mr');
    expect(r.routeNote).toBeUndefined();
    const o = job.outcome as { route: string; decision: string; tasks: { task: string; run: boolean; ran: boolean; reason: string; outputs?: { kind: string }[] }[] };
    expect(o.route).toBe('neuro-mr');
    expect(o.decision).toBe('lesion');
    expect(o.tasks.map((x) => [x.task, x.run, x.ran])).toEqual([
      ['stroke-mr', true, true],
      ['brain-tumour-mr', false, false],
      ['stroke-ct', false, false],
      ['liver-ct-mr', false, false],
    ]);
    expect(o.tasks[0].outputs?.map((x) => x.kind)).toEqual(['SEG', 'SR']);
    expect(o.tasks[1].reason).toMatch(/content present \["T1C"\]/);
    // the study reference works as a key too
    expect((await request(t.node.app).post('/admin/api/routes/test').set(auth).send({ study: ref(studyUid) })).body.route).toBe('neuro-mr');
  });

  test('headers: time of day decides the night CT route; no route → says what happens', async () => {
    const night = await request(t.node.app).post('/admin/api/routes/test').set(auth).send({ attributes: { Modality: 'CT', StudyDescription: 'CT head' }, time: '02:30' });
    expect(night.body.route).toBe('ct-night');
    expect(night.body.routes[0].checks[1]).toMatchObject({ field: 'time of day', operator: 'timeOfDay', expected: '18:00-07:00', actual: '02:30', ok: true });
    const day = await request(t.node.app).post('/admin/api/routes/test').set(auth).send({ attributes: { Modality: 'CT' }, time: '12:00' });
    expect(day.body.route).toBe('everything-else');
    const mr = await request(t.node.app)
      .post('/admin/api/routes/test')
      .set(auth)
      .send({ calledAeTitle: 'STROKEAI', series: [{ Modality: 'MR', SeriesDescription: 't1_mprage_post' }, { Modality: 'MR', SeriesDescription: 'ep2d_diff' }], present: ['DWI', 'T1C'] });
    expect(mr.body.route).toBe('neuro-mr');
    const d = Object.fromEntries(mr.body.tasks.decisions.map((x: { task: string }) => [x.task, x]));
    // the route's default tumour model (brats-shaspec) is not loaded in this test node
    expect(d['brain-tumour-mr'].reason).toMatch(/brain tumour model "brats-shaspec" is not installed or not ready/);
  });

  test('no route matches: null route and what happens', async () => {
    const only = await startTestNode({ admin: { token: ADMIN_TOKEN }, inference: { modelsDir: tinyModelsDir() }, routes: [{ name: 'mr', match: { field: 'Modality', equals: 'MR' } }] });
    try {
      const r = await request(only.node.app).post('/admin/api/routes/test').set(auth).send({ attributes: { Modality: 'US' } });
      expect(r.body.route).toBeNull();
      expect(r.body.noRoute).toMatch(/kept .* but not processed/);
      expect(r.body.tasks).toBeUndefined();
    } finally {
      await only.stop();
    }
  }, 30000);

  test('auth and input checks', async () => {
    expect((await request(t.node.app).post('/admin/api/routes/test').send({ attributes: { Modality: 'CT' } })).status).toBe(401);
    expect((await request(t.node.app).get('/admin/api/routes/stored')).status).toBe(401);
    expect((await request(t.node.app).post('/admin/api/routes/test').set(auth).send({ studyInstanceUid: '1.2.3.4' })).status).toBe(404);
    expect((await request(t.node.app).post('/admin/api/routes/test').set(auth).send({})).status).toBe(400);
    expect((await request(t.node.app).post('/admin/api/routes/test').set(auth).send({ attributes: { Modality: 'CT' }, time: '25:00' })).status).toBe(400);
    expect((await request(t.node.app).post('/admin/api/routes/test').set(auth).send({ attributes: { Modality: { $gt: 1 } } })).status).toBe(400);
    const stored = await request(t.node.app).get('/admin/api/routes/stored').set(auth);
    expect(stored.body.studies).toContainEqual(expect.objectContaining({ studyRef: ref(studyUid), series: 2, modalities: ['MR'] }));
    expect(JSON.stringify(stored.body)).not.toContain(studyUid); // no UID unless admin.showPatientIdentifiers
  });
});

describe('Route tester panel in Chromium', () => {
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
  }, 30000);

  afterAll(async () => {
    await browser?.close();
  });

  test('pick the stored test study, see the route it takes and the tasks', async () => {
    await page.goto(`${t.httpUrl}/admin/`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#login-submit');
    await page.waitForURL(`${t.httpUrl}/admin/`);
    const option = page.locator(`[data-testid="rt-study"] option[data-ref="${ref(studyUid)}"]`);
    await option.waitFor({ state: 'attached', timeout: 10000 });
    await page.selectOption('[data-testid="rt-study"]', { value: (await option.getAttribute('value'))! });
    await page.click('[data-testid="rt-run"]');
    await page.getByTestId('rt-route').waitFor({ timeout: 10000 });
    expect(await page.getByTestId('rt-route').textContent()).toBe('neuro-mr');
    expect(await page.locator('[data-testid="rt-tasks"] tr[data-task="stroke-mr"]').textContent()).toMatch(/runs/);
    expect(await page.locator('[data-testid="rt-tasks"] tr[data-task="brain-tumour-mr"]').textContent()).toMatch(/not run.*T1C/);
    expect(await page.locator('[data-testid="rt-routes"] tr[data-route="ct-night"]').count()).toBe(2);
    await page.getByTestId('route-tester').scrollIntoViewIfNeeded();
    await page.getByTestId('route-tester').screenshot({ path: path.join(SHOTS, 'route-tester-stored-study.png') });

    // pasted headers at night: the CT night route
    await page.fill('[data-testid="rt-time"]', '23:15');
    await page.locator('[data-testid="route-tester"] details summary').click();
    await page.fill('[data-testid="rt-headers"]', JSON.stringify({ attributes: { Modality: 'CT', BodyPartExamined: 'HEAD' } }));
    await page.click('[data-testid="rt-run-headers"]');
    await waitFor(async () => (await page.getByTestId('rt-route').textContent()) === 'ct-night', 10000, 'ct-night shown');
    await page.getByTestId('route-tester').screenshot({ path: path.join(SHOTS, 'route-tester-headers-night.png') });
    expect(consoleErrors).toEqual([]);
  }, 60000);
});
