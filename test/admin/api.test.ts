/**
 * Admin JSON API, auth, /readyz and /metrics on a real node built by buildNode (supertest against
 * node.app; the node's own receivers and workers run).
 */
import * as fs from 'fs';
import request from 'supertest';
import { startTestNode, waitFor, TestNode } from '../helpers/node';
import type { BuiltNode } from '../../src/wiring';
import { ADMIN_TOKEN, strokeStudy, stow, tinyModelsDir } from './helpers';

const bearer = { Authorization: `Bearer ${ADMIN_TOKEN}` };

describe('admin disabled without a token', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({ inference: { modelsDir: tinyModelsDir([]) } });
  });
  afterAll(() => t.stop());

  test('/admin and its API answer 503 and say how to enable them; there is no default password', async () => {
    for (const p of ['/admin', '/admin/', '/admin/login', '/admin/api/status']) {
      const res = await request(t.node.app).get(p).set(bearer);
      expect(res.status).toBe(503);
      expect(res.text).toMatch(/admin\.token/);
    }
    const login = await request(t.node.app).post('/admin/login').send({ token: ADMIN_TOKEN });
    expect(login.status).toBe(503);
    expect(login.headers['set-cookie']).toBeUndefined();
  });

  test('/readyz is 200 with no model configured, /metrics still served', async () => {
    const r = await request(t.node.app).get('/readyz');
    expect(r.status).toBe(200);
    expect(r.body.checks.models).toEqual({ ok: true, detail: 'no model configured' });
    expect(r.body.checks.store.ok).toBe(true);
    const m = await request(t.node.app).get('/metrics');
    expect(m.status).toBe(200);
    expect(m.text).toMatch(/^stroke_node_jobs\{state="done"\} 0$/m);
  });
});

describe('admin API with a token', () => {
  let t: TestNode;
  let node: BuiltNode;
  beforeAll(async () => {
    t = await startTestNode({
      admin: { token: ADMIN_TOKEN },
      inference: { modelsDir: tinyModelsDir([{ name: 'shaspec-realbg' }, { name: 'broken', badChecksum: true }]) },
      routes: [{ name: 'default', quietPeriodSeconds: 0.3 }],
    });
    node = t.node as BuiltNode;
  });
  afterAll(() => t.stop());

  test('missing credentials → 401 with WWW-Authenticate, wrong token → 403, malformed header → 401', async () => {
    const none = await request(node.app).get('/admin/api/status');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    const wrong = await request(node.app).get('/admin/api/status').set('Authorization', 'Bearer not-the-token-0123456789');
    expect(wrong.status).toBe(403);
    const basic = await request(node.app).get('/admin/api/status').set('Authorization', `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`);
    expect(basic.status).toBe(401);
    const forged = await request(node.app).get('/admin/api/status').set('Cookie', 'stroke_admin=forged-session-id');
    expect(forged.status).toBe(401);
    const act = await request(node.app).post('/admin/api/actions/pause').send({});
    expect(act.status).toBe(401);
    expect(node.paused).toBe(false);
  });

  test('status shows version, uptime, disk against the watermark, queue counts and models', async () => {
    const res = await request(node.app).get('/admin/api/status').set(bearer);
    expect(res.status).toBe(200);
    const pkg = JSON.parse(fs.readFileSync(require.resolve('../../package.json'), 'utf8')) as { version: string };
    expect(res.body.version).toBe(pkg.version);
    expect(res.body.uptimeSeconds).toBeGreaterThanOrEqual(0);
    expect(res.body.disk.minFreeMb).toBe(1);
    expect(res.body.disk.freeMb).toBeGreaterThan(1);
    expect(res.body.disk.level).toBe('ok');
    expect(res.body.models).toEqual({ total: 2, ready: 1 });
    expect(Object.keys(res.body.queue).sort()).toEqual(['collecting', 'dead', 'done', 'failed', 'not_processed', 'ready', 'running']);
    expect(res.body.housekeeping.nextRuns['outbox-sweep']).toEqual(expect.any(String));
  });

  test('the page needs a session: redirect to login, wrong token refused, right token sets an HttpOnly SameSite=Strict cookie', async () => {
    const page = await request(node.app).get('/admin/');
    expect(page.status).toBe(302);
    expect(page.headers.location).toBe('/admin/login');
    const loginPage = await request(node.app).get('/admin/login');
    expect(loginPage.status).toBe(200);
    expect(loginPage.text).toContain('id="login-form"');

    const bad = await request(node.app).post('/admin/login').send({ token: 'wrong-token-wrong-token' });
    expect(bad.status).toBe(401);
    expect(bad.headers['set-cookie']).toBeUndefined();

    const ok = await request(node.app).post('/admin/login').send({ token: ADMIN_TOKEN });
    expect(ok.status).toBe(200);
    const cookie = (ok.headers['set-cookie'] as unknown as string[])[0];
    expect(cookie).toMatch(/^stroke_admin=[A-Za-z0-9_-]{40,};/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/admin/);
    const sid = cookie.split(';')[0];

    const page2 = await request(node.app).get('/admin/').set('Cookie', sid);
    expect(page2.status).toBe(200);
    expect(page2.text).toContain('id="studies-table"');
    const csp = page2.headers['content-security-policy'];
    expect(csp).toMatch(/default-src 'self'/);
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).not.toMatch(/unsafe-inline|https:/);
    expect(page2.headers['x-content-type-options']).toBe('nosniff');
    expect(page2.headers['x-frame-options']).toBe('SAMEORIGIN');

    const api = await request(node.app).get('/admin/api/models').set('Cookie', sid);
    expect(api.status).toBe(200);

    // Cookie-authenticated actions: JSON only, same origin only (CSRF).
    const form = await request(node.app).post('/admin/api/actions/pause').set('Cookie', sid).type('form').send('x=1');
    expect(form.status).toBe(415);
    const cross = await request(node.app).post('/admin/api/actions/pause').set('Cookie', sid).set('Origin', 'http://evil.example').send({});
    expect(cross.status).toBe(403);
    expect(node.paused).toBe(false);

    // A form login (no JavaScript) redirects to the page.
    const formLogin = await request(node.app).post('/admin/login').type('form').send(`token=${ADMIN_TOKEN}`);
    expect(formLogin.status).toBe(303);
    expect(formLogin.headers.location).toBe('/admin/');

    const out = await request(node.app).post('/admin/logout').set('Cookie', sid).send({});
    expect(out.status).toBe(200);
    expect((await request(node.app).get('/admin/api/models').set('Cookie', sid)).status).toBe(401);
  });

  test('models list state, provider, counters; a checksum mismatch is shown disabled with the reason; /readyz ready', async () => {
    const res = await request(node.app).get('/admin/api/models').set(bearer);
    const byName = Object.fromEntries((res.body.models as { name: string }[]).map((m) => [m.name, m])) as Record<string, Record<string, unknown>>;
    expect(byName['shaspec-realbg']).toMatchObject({ status: 'ready', executionProvider: 'cpu', inferences: 0, version: '0.0.1-test' });
    expect(byName.broken).toMatchObject({ status: 'disabled' });
    expect(byName.broken.lastError).toMatch(/sha256 mismatch/);
    const rz = await request(node.app).get('/readyz');
    expect(rz.status).toBe(200);
    expect(rz.body.checks.models.detail).toMatch(/1\/2 ready \(shaspec-realbg\)/);
  });

  test('a processed study appears with availability, route, model, outputs and timings; no patient identifiers by default', async () => {
    const s = strokeStudy({ patientName: 'DOE^JANE', patientId: 'PID-4711' });
    expect(await stow(node.app, s.files)).toBe(200);
    await waitFor(async () => (await node.queue.counts()).done === 1, 20000, 'study processed');
    const res = await request(node.app).get('/admin/api/studies').set(bearer);
    expect(res.status).toBe(200);
    const [job] = res.body.studies;
    expect(job.state).toBe('done');
    expect(job.studyRef).toMatch(/^[0-9a-f]{10}$/);
    expect(job.outcome).toMatchObject({ decision: 'lesion', available: ['DWI', 'ADC'], model: { name: 'shaspec-realbg' } });
    expect(job.outcome.outputs).toEqual([
      { kind: 'SEG', count: 1 },
      { kind: 'SR', count: 1 },
    ]);
    expect(job.outcome.lesionVolumeMl).toBeGreaterThan(5);
    expect(job.outcome.timingsMs.inference).toBeGreaterThan(0);
    const all = JSON.stringify((await request(node.app).get('/admin/api/overview').set(bearer)).body);
    expect(all).not.toContain('DOE');
    expect(all).not.toContain('PID-4711');
    expect(all).not.toContain(s.study.studyInstanceUid);

    const models = await request(node.app).get('/admin/api/models').set(bearer);
    expect(models.body.models.find((m: { name: string }) => m.name === 'shaspec-realbg').inferences).toBe(1);

    const metrics = await request(node.app).get('/metrics');
    expect(metrics.text).toMatch(/^stroke_node_instances_received_total\{transport="stow",status="stored"\} 6$/m);
    expect(metrics.text).toMatch(/^stroke_node_studies_processed_total\{outcome="done"\} 1$/m);
    expect(metrics.text).toMatch(/^stroke_node_inference_seconds_count\{model="shaspec-realbg"\} 1$/m);
    expect(metrics.text).toMatch(/^stroke_node_model_status\{model="broken",status="disabled"\} 1$/m);
    expect(metrics.text).toMatch(/^stroke_node_jobs\{state="done"\} 1$/m);
    expect(metrics.text).toMatch(/^stroke_node_disk_free_megabytes \d+$/m);
    expect(metrics.text).toMatch(/^stroke_node_process_cpu_user_seconds_total /m);
    const bytes = Number(/^stroke_node_received_bytes_total\{transport="stow"\} (\d+)$/m.exec(metrics.text)?.[1]);
    expect(bytes).toBe(s.files.reduce((n, b) => n + b.length, 0));
  });

  test('job retry: dead → ready; a done job or an unknown id is refused', async () => {
    const q = node.queue;
    node.paused = true; // keep the worker from picking the retried job up during the test
    try {
      const j = await q.noteArrival('1.2.3.999', 'default', 'OTHER', 'urgent', Date.now() - 60_000);
      await q.promoteStable(new Map([['default', { route: 'default', quietPeriodMs: 1, requiredSeries: [], priority: 'urgent' }]]));
      const claimed = (await q.claim())!;
      expect(claimed.id).toBe(j.id);
      expect((await q.fail(j.id, 'boom', 1)).state).toBe('dead');
      const r = await request(node.app).post(`/admin/api/actions/jobs/${j.id}/retry`).set(bearer).send({});
      expect(r.status).toBe(200);
      expect(r.body.job.state).toBe('ready');
      expect(r.body.job.handoff).toBe('operator-retry');
      const done = (await q.list({ states: ['done'] }))[0];
      expect((await request(node.app).post(`/admin/api/actions/jobs/${done.id}/retry`).set(bearer).send({})).status).toBe(409);
      expect((await request(node.app).post('/admin/api/actions/jobs/99999/retry').set(bearer).send({})).status).toBe(404);
    } finally {
      node.db.prepare("DELETE FROM jobs WHERE study_uid = '1.2.3.999'").run();
      node.paused = false;
    }
  });

  test('pause stops new jobs from starting, resume lets them run', async () => {
    expect((await request(node.app).post('/admin/api/actions/pause').set(bearer).send({})).body.paused).toBe(true);
    const s = strokeStudy();
    expect(await stow(node.app, s.files)).toBe(200);
    await waitFor(async () => (await node.queue.counts()).ready === 1, 10000, 'job ready');
    await new Promise((r) => setTimeout(r, 700));
    expect((await node.queue.counts()).ready).toBe(1);
    expect((await request(node.app).get('/metrics')).text).toMatch(/^stroke_node_processing_paused 1$/m);
    expect((await request(node.app).post('/admin/api/actions/resume').set(bearer).send({})).body.paused).toBe(false);
    await waitFor(async () => (await node.queue.counts()).done === 2, 20000, 'second study processed after resume');
  });

  test('reload models picks up a model file fixed on disk', async () => {
    const dir = node.config.inference.modelsDir;
    const manifest = JSON.parse(fs.readFileSync(`${dir}/broken.json`, 'utf8'));
    manifest.sha256 = JSON.parse(fs.readFileSync(`${dir}/shaspec-realbg.json`, 'utf8')).sha256;
    fs.writeFileSync(`${dir}/broken.json`, JSON.stringify(manifest));
    const r = await request(node.app).post('/admin/api/actions/models/reload').set(bearer).send({});
    expect(r.status).toBe(200);
    expect(r.body.models.map((m: { name: string; status: string }) => `${m.name}:${m.status}`).sort()).toEqual(['broken:ready', 'shaspec-realbg:ready']);
    expect(node.paused).toBe(false);
  });

  test('housekeeping tasks can be run from the API; unknown task → 404', async () => {
    const r = await request(node.app).post('/admin/api/actions/housekeeping/disk-check').set(bearer).send({});
    expect(r.status).toBe(200);
    expect(r.body.summary.level).toBe('ok');
    expect((await request(node.app).post('/admin/api/actions/housekeeping/rm-rf').set(bearer).send({})).status).toBe(404);
    const st = await request(node.app).get('/admin/api/status').set(bearer);
    expect(st.body.housekeeping.lastRuns['disk-check'].ok).toBe(true);
  });
});

describe('patient identifiers when allowed', () => {
  test('admin.showPatientIdentifiers: true shows patient name, ID and the Study Instance UID', async () => {
    const t = await startTestNode({
      admin: { token: ADMIN_TOKEN, showPatientIdentifiers: true },
      inference: { modelsDir: tinyModelsDir([]) },
      routes: [{ name: 'default', quietPeriodSeconds: 60 }],
    });
    try {
      const s = strokeStudy({ patientName: 'DOE^JANE', patientId: 'PID-4711' });
      expect(await stow(t.node.app, s.files)).toBe(200);
      const res = await request(t.node.app).get('/admin/api/studies').set(bearer);
      expect(res.body.studies[0].state).toBe('collecting');
      expect(res.body.studies[0].patient).toEqual({ patientName: 'DOE^JANE', patientId: 'PID-4711', studyInstanceUid: s.study.studyInstanceUid });
    } finally {
      await t.stop();
    }
  });
});

describe('rate limiting of failed authentication', () => {
  test('after 10 failures from one client, even the right token is answered 429', async () => {
    const t = await startTestNode({ admin: { token: ADMIN_TOKEN }, inference: { modelsDir: tinyModelsDir([]) } });
    try {
      // successful requests do not count
      for (let i = 0; i < 12; i++) expect((await request(t.node.app).get('/admin/api/status').set(bearer)).status).toBe(200);
      for (let i = 0; i < 5; i++) expect((await request(t.node.app).post('/admin/login').send({ token: `wrong-${i}-xxxxxxxxxxxxxxxx` })).status).toBe(401);
      for (let i = 0; i < 5; i++) expect((await request(t.node.app).get('/admin/api/status').set('Authorization', 'Bearer wrong-wrong-wrong-wrong')).status).toBe(403);
      const blocked = await request(t.node.app).post('/admin/login').send({ token: ADMIN_TOKEN });
      expect(blocked.status).toBe(429);
      expect(blocked.headers['set-cookie']).toBeUndefined();
      expect((await request(t.node.app).get('/admin/api/status').set(bearer)).status).toBe(429);
    } finally {
      await t.stop();
    }
  });
});
