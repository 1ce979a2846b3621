/**
 * The operator's admin API (issue 19) on a real node built by buildNode (supertest against node.app):
 * study drill-down, alerts, outbox groups and "retry all failed", re-sent studies counted as duplicates,
 * reprocess on purpose, and the admin URL in the start-up log.
 */
import * as fs from 'fs';
import * as os from 'os';
import request from 'supertest';
import { freePort } from '../harness/ports';
import { startTestNode, waitFor, TestNode } from '../helpers/node';
import type { BuiltNode } from '../../src/wiring';
import { log } from '../../src/util/log';
import { ADMIN_TOKEN, strokeStudy, stow, tinyModelsDir } from './helpers';

const bearer = { Authorization: `Bearer ${ADMIN_TOKEN}` };

describe('operator API: drill-down, alerts, outbox groups, duplicates, reprocess', () => {
  let t: TestNode;
  let node: BuiltNode;
  const study = strokeStudy({ patientName: 'DOE^JANE', patientId: 'PID-4711' });
  let studyRef: string;
  let warn: jest.SpyInstance;
  let info: jest.SpyInstance;

  beforeAll(async () => {
    warn = jest.spyOn(log, 'warn');
    info = jest.spyOn(log, 'info');
    const closed = await freePort(); // nothing listens: the destination refuses every connection
    t = await startTestNode({
      admin: { token: ADMIN_TOKEN },
      inference: { modelsDir: tinyModelsDir([{ name: 'shaspec-realbg' }, { name: 'broken', badChecksum: true }]) },
      destinations: [{ name: 'pacs', type: 'dimse', host: '127.0.0.1', port: closed, calledAeTitle: 'ORTHANC' }],
      routes: [{ name: 'default', quietPeriodSeconds: 0.3, destinations: ['pacs'] }],
      egress: { maxAttempts: 5, initialBackoffSeconds: 60, maxBackoffSeconds: 120 },
    });
    node = t.node as BuiltNode;
  });
  afterAll(async () => {
    warn.mockRestore();
    info.mockRestore();
    await t.stop();
  });

  test('the start-up log line names the admin page URL', () => {
    const listening = info.mock.calls.find((c) => (c[1] as { event?: string } | undefined)?.event === 'http.listening');
    expect(listening?.[1]).toMatchObject({ admin: `http://127.0.0.1:${node.httpPort}/admin/` });
    expect(node.adminUrl).toBe(`http://127.0.0.1:${node.httpPort}/admin/`);
  });

  test('a model that is not ready is an alert before any study arrives', async () => {
    const r = await request(node.app).get('/admin/api/alerts').set(bearer);
    expect(r.status).toBe(200);
    const ids = (r.body.alerts as { id: string }[]).map((a) => a.id);
    expect(ids).toEqual(['model-broken']);
    expect(r.body.alerts[0]).toMatchObject({ level: 'error', kind: 'models' });
    expect(r.body.alerts[0].text).toMatch(/Model broken is disabled: .*sha256 mismatch/);
  });

  test('a processed study: the drill-down lists every series with its classification and reason, timings, objects and their delivery', async () => {
    expect(await stow(node.app, study.files)).toBe(200);
    await waitFor(async () => (await node.queue.counts()).done === 1, 30000, 'study processed');
    const list = await request(node.app).get('/admin/api/studies').set(bearer);
    studyRef = list.body.studies[0].studyRef;
    expect(list.body.studies[0].duplicates).toBe(0);
    expect((await request(node.app).get('/admin/api/studies/0123456789').set(bearer)).status).toBe(404);

    const r = await request(node.app).get(`/admin/api/studies/${studyRef}`).set(bearer);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ studyRef, instances: 6, duplicates: 0 });
    expect(r.body.storedSeries.map((s: { description: string; instances: number }) => `${s.description}:${s.instances}`)).toEqual(['DWI b1000 TRACEW:3', 'ADC:3']);
    const [job] = r.body.jobs;
    expect(job.id).toBe(1);
    expect(job.series.map((s: { classification: string; usable: boolean }) => `${s.classification}:${s.usable}`).sort()).toEqual(['ADC:true', 'DWI:true']);
    for (const s of job.series) expect(s.reason.length).toBeGreaterThan(5);
    expect(job.series.find((s: { classification: string }) => s.classification === 'DWI').bValues).toContain(1000);
    expect(job.outcome.timingsMs.inference).toBeGreaterThan(0);
    expect(job.objects.map((o: { kind: string }) => o.kind)).toEqual(['SEG', 'SR']);
    for (const o of job.objects) {
      expect(o.seriesInstanceUid).toMatch(/^[0-9.]+$/);
      expect(o.deliveries).toHaveLength(1);
      expect(o.deliveries[0]).toMatchObject({ destination: 'pacs' });
      expect(o.notSent).toBeNull();
    }
    // the route: one route without conditions takes it
    expect(r.body.routeCheck).toMatchObject({ route: 'default', routes: [{ route: 'default', ok: true, checks: [] }] });
    // tasks run or not, with reasons (the processor records them)
    const strokeMr = job.tasks.find((x: { task: string }) => x.task === 'stroke-mr');
    expect(strokeMr).toMatchObject({ ran: true, listed: true });
    expect(strokeMr.details.join(' ')).toMatch(/made SEG, SR/);
    expect(job.tasks.find((x: { task: string }) => x.task === 'stroke-ct')).toMatchObject({ ran: false });
    // the same study by job id and by its Study Instance UID
    expect((await request(node.app).get('/admin/api/studies/1').set(bearer)).body.studyRef).toBe(studyRef);
    expect((await request(node.app).get(`/admin/api/studies/${study.study.studyInstanceUid}`).set(bearer)).body.studyRef).toBe(studyRef);
    // no patient identifier, and not the UID either, unless admin.showPatientIdentifiers
    const all = JSON.stringify(r.body);
    expect(all).not.toContain('DOE');
    expect(all).not.toContain('PID-4711');
    expect(all).not.toContain(study.study.studyInstanceUid);
  });

  test('the refusing destination is an alert; its rows are one outbox group; retry all failed lifts the backoff', async () => {
    await waitFor(async () => (await request(node.app).get('/admin/api/outbox/groups').set(bearer)).body.groups[0]?.counts.failed === 2, 20000, 'rows failed');
    const alerts = (await request(node.app).get('/admin/api/alerts').set(bearer)).body.alerts as { id: string; text: string; level: string }[];
    const dest = alerts.find((a) => a.id === 'destination-pacs');
    expect(dest?.level).toBe('error');
    expect(dest?.text).toMatch(/^Destination pacs is failing: 1 failed attempt in a row \(.*\); circuit open, next attempt in \d+ s; 2 result\(s\) waiting$/);

    const g = (await request(node.app).get('/admin/api/outbox/groups').set(bearer)).body.groups;
    expect(g).toHaveLength(1);
    expect(g[0]).toMatchObject({ studyRef, destination: 'pacs', total: 2, kinds: ['SEG', 'SR'], counts: { pending: 0, sending: 0, sent: 0, failed: 2, dead: 0 } });
    expect(g[0].rows.map((x: { state: string }) => x.state)).toEqual(['failed', 'failed']);
    expect(g[0].nextAttemptAt).toBeGreaterThan(Date.now() + 30_000);

    expect((await request(node.app).post('/admin/api/actions/destinations/nowhere/retry-failed').set(bearer).send({})).status).toBe(404);
    expect((await request(node.app).post('/admin/api/actions/outbox/retry-failed').set(bearer).send({ destination: 'nowhere' })).status).toBe(404);
    // another study's reference matches nothing
    expect((await request(node.app).post('/admin/api/actions/outbox/retry-failed').set(bearer).send({ studyRef: 'ffffffffff' })).body.rows).toBe(0);
    node.paused = true; // (the egress is not paused by this; it only keeps the worker idle)
    const r = await request(node.app).post('/admin/api/actions/destinations/pacs/retry-failed').set(bearer).send({});
    node.paused = false;
    expect(r.body).toEqual({ ok: true, rows: 2 });
    // the rows are due now: the sender tries again at once (and fails again: nothing listens)
    await waitFor(async () => node.egress.outbox.destination('pacs').consecutiveFailures === 2, 20000, 'tried again after the operator retry');
    await waitFor(
      async () => node.egress.outbox.list({ studyInstanceUid: study.study.studyInstanceUid }).every((x) => x.state === 'failed' && x.attempts === 1),
      10000,
      'attempts counted from 0 again',
    );
  });

  test('a re-sent study is counted per study, logged once (not per instance), and not processed again', async () => {
    warn.mockClear();
    expect(await stow(node.app, study.files)).toBe(200);
    const dupLogs = warn.mock.calls.filter((c) => (c[1] as { event?: string } | undefined)?.event === 'store.duplicate');
    expect(dupLogs).toHaveLength(1);
    expect(dupLogs[0][1]).toMatchObject({ study: studyRef, duplicates: 1 });
    await new Promise((r) => setTimeout(r, 800));
    const list = await request(node.app).get('/admin/api/studies').set(bearer);
    expect(list.body.studies).toHaveLength(1);
    expect(list.body.studies[0].duplicates).toBe(6);
    const detail = (await request(node.app).get(`/admin/api/studies/${studyRef}`).set(bearer)).body;
    expect(detail.duplicates).toBe(6);
    expect(detail.storedSeries.map((s: { duplicates: number }) => s.duplicates)).toEqual([3, 3]);
  });

  test('reprocess: refused for an unknown study or from a foreign origin; a new linked job whose outcome says it was manual', async () => {
    expect((await request(node.app).post('/admin/api/studies/ffffffffff/reprocess').set(bearer).send({})).status).toBe(404);
    const login = await request(node.app).post('/admin/login').send({ token: ADMIN_TOKEN });
    const sid = (login.headers['set-cookie'] as unknown as string[])[0].split(';')[0];
    const cross = await request(node.app).post(`/admin/api/studies/${studyRef}/reprocess`).set('Cookie', sid).set('Origin', 'http://evil.example').send({});
    expect(cross.status).toBe(403);
    expect((await node.queue.list()).length).toBe(1);

    const r = await request(node.app).post(`/admin/api/studies/${studyRef}/reprocess`).set('Cookie', sid).send({});
    expect(r.status).toBe(200);
    expect(r.body.job).toMatchObject({ id: 2, state: 'ready', handoff: 'operator-reprocess', previousJobId: 1, instanceCount: 6, manualReprocess: true });
    // a second request while the first is still open is refused
    const again = await request(node.app).post(`/admin/api/studies/${studyRef}/reprocess`).set(bearer).send({});
    if ((await node.queue.get(2))!.state !== 'done') expect(again.status).toBe(409);
    await waitFor(async () => (await node.queue.get(2))?.state === 'done', 30000, 'reprocessed');
    const j2 = (await node.queue.get(2))!;
    expect((j2.outcome as { manualReprocess: unknown }).manualReprocess).toEqual({ previousJobId: 1, requestedAt: j2.createdAt });
    const detail = (await request(node.app).get(`/admin/api/studies/${studyRef}`).set(bearer)).body;
    expect(detail.jobs.map((j: { id: number; manualReprocess: boolean }) => `${j.id}:${j.manualReprocess}`)).toEqual(['2:true', '1:false']);
    expect((await node.queue.get(1))!.state).toBe('done');
  });
});

describe('alerts for the disk and dead letters', () => {
  test('disk near the floor is a warning; a dead result is an alert until it is retried', async () => {
    const probe = fs.statfsSync(os.tmpdir());
    const freeMb = (probe.bavail * probe.bsize) / (1024 * 1024);
    const t = await startTestNode({
      admin: { token: ADMIN_TOKEN },
      storage: { minFreeMb: Math.floor(freeMb * 0.6) }, // free is above the floor but under twice it: "low"
      inference: { modelsDir: tinyModelsDir() },
      destinations: [{ name: 'pacs', type: 'dimse', host: '127.0.0.1', port: await freePort(), calledAeTitle: 'ORTHANC' }],
      routes: [{ name: 'default', quietPeriodSeconds: 0.3, destinations: ['pacs'] }],
      egress: { maxAttempts: 1, initialBackoffSeconds: 60, maxBackoffSeconds: 60 },
    });
    try {
      const a0 = (await request(t.node.app).get('/admin/api/alerts').set(bearer)).body.alerts as { id: string; level: string; text: string }[];
      expect(a0.map((a) => a.id)).toEqual(['disk']);
      expect(a0[0].level).toBe('warn');
      expect(a0[0].text).toMatch(/^Disk near the free-space floor: \d+ MB free, floor \d+ MB/);
      expect(await stow(t.node.app, strokeStudy().files)).toBe(200);
      await waitFor(async () => (t.node as BuiltNode).egress.stats()[0]?.dead === 2, 30000, 'dead letters');
      const a1 = (await request(t.node.app).get('/admin/api/alerts').set(bearer)).body.alerts as { id: string; text: string }[];
      expect(a1.map((a) => a.id).sort()).toEqual(['dead-pacs', 'destination-pacs', 'disk']);
      expect(a1.find((a) => a.id === 'dead-pacs')!.text).toMatch(/^2 result\(s\) for pacs are dead letters/);
      // the grouped "retry" of the outbox takes dead rows when asked: the dead-letter alert goes
      const r = await request(t.node.app).post('/admin/api/actions/outbox/retry-failed').set(bearer).send({ destination: 'pacs', includeDead: true });
      expect(r.body.rows).toBe(2);
      const a2 = (await request(t.node.app).get('/admin/api/alerts').set(bearer)).body.alerts as { id: string }[];
      expect(a2.map((a) => a.id)).not.toContain('dead-pacs');
    } finally {
      await t.stop();
    }
  });
});
