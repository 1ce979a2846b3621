/**
 * The admin surface against a hostile page or an anonymous prober (issue 18, minor items): a
 * logged-in browser tricked into POSTing from an opaque origin (`Origin: null`: sandboxed iframe,
 * data: page), and /readyz read without login.
 */
import * as fs from 'fs';
import * as path from 'path';
import request from 'supertest';
import { startTestNode, TestNode } from '../helpers/node';
import { ADMIN_TOKEN, tinyModelsDir } from './helpers';

describe('admin actions with a session cookie', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({ admin: { token: ADMIN_TOKEN }, inference: { modelsDir: tinyModelsDir([]) } });
  });
  afterAll(() => t.stop());

  const login = async (): Promise<string> => {
    const res = await request(t.node.app).post('/admin/login').send({ token: ADMIN_TOKEN });
    expect(res.status).toBe(200);
    return String(res.headers['set-cookie'][0]).split(';')[0];
  };

  test('a POST with Origin: null (sandboxed frame, data: page) is refused with 403 and changes nothing', async () => {
    const sid = await login();
    const t0 = Date.now();
    const res = await request(t.node.app).post('/admin/api/actions/pause').set('Cookie', sid).set('Origin', 'null').send({});
    expect(res.status).toBe(403);
    expect(res.body.error).toMatch(/cross-origin/);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(t.node.paused).toBe(false);
    // the node's own page (same origin) still can
    const host = `127.0.0.1:${t.node.httpPort}`;
    const own = await request(t.node.app).post('/admin/api/actions/pause').set('Host', host).set('Cookie', sid).set('Origin', `http://${host}`).send({});
    expect(own.status).toBe(200);
    expect(t.node.paused).toBe(true);
    const resume = await request(t.node.app).post('/admin/api/actions/resume').set('Host', host).set('Cookie', sid).set('Origin', `http://${host}`).send({});
    expect(resume.status).toBe(200);
    expect(t.node.paused).toBe(false);
  });

  test('a malformed Origin is refused too', async () => {
    const sid = await login();
    const res = await request(t.node.app).post('/admin/api/actions/pause').set('Cookie', sid).set('Origin', 'not a url').send({});
    expect(res.status).toBe(403);
    expect(t.node.paused).toBe(false);
  });
});

describe('/readyz without login', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({ admin: { token: ADMIN_TOKEN }, inference: { modelsDir: tinyModelsDir([]) } });
  });
  afterAll(() => t.stop());

  /** Anything that looks like an absolute local path. */
  const LOCAL_PATH = /(^|[\s'"(=,:])\/[A-Za-z0-9._-]+\//;

  test('shows no storage path or other local path, when ready and when the store is broken', async () => {
    const ok = await request(t.node.app).get('/readyz');
    expect(ok.status).toBe(200);
    expect(ok.text).not.toContain(t.dir);
    expect(ok.text).not.toContain(path.basename(t.dir));
    expect(ok.text).not.toMatch(LOCAL_PATH);
    expect(ok.body.checks.store).toEqual({ ok: true, detail: 'storage folder writable' });

    // the store's temp folder gone: the check fails, its detail still names no path
    fs.rmSync(t.node.store.tmpDir, { recursive: true, force: true });
    try {
      const broken = await request(t.node.app).get('/readyz');
      expect(broken.status).toBe(503);
      expect(broken.body.checks.store.ok).toBe(false);
      expect(broken.body.checks.store.detail).toMatch(/ENOENT/);
      expect(broken.text).not.toContain(t.dir);
      expect(broken.text).not.toMatch(LOCAL_PATH);
      expect(broken.text).toContain('<path>');
    } finally {
      fs.mkdirSync(t.node.store.tmpDir, { recursive: true });
    }
  });
});
