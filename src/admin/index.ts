/**
 * Operations surface of the node, mounted on its express app:
 *   /readyz              readiness (store writable, disk above watermark, a model ready, queue) 200/503
 *   /metrics             Prometheus text format (no patient data; unauthenticated, like /healthz)
 *   /admin               the admin page (login form → session cookie), static HTML/JS/CSS, no CDN
 *   /admin/api/*         JSON API (Bearer token or session cookie); actions are POST under /admin/api/actions
 * Without `admin.token` in the config, /admin answers 503 saying how to enable it (no default password).
 */
import * as fs from 'fs';
import * as path from 'path';
import express, { Request, Response, Router } from 'express';
import helmet from 'helmet';
import type { StrokeNode } from '../node';
import type { ModelRegistry } from '../models/registry';
import type { EgressService } from '../egress/egress';
import type { OutboxState } from '../egress/outbox';
import type { RedisHandoff } from '../egress/redis-handoff';
import { HOUSEKEEPING_TASKS, Housekeeping, HousekeepingTask } from '../jobs/housekeeping';
import { log } from '../util/log';
import { AdminAuth, AuthOptions } from './auth';
import { createMetrics, NodeMetrics } from './metrics';
import { readiness } from './readiness';
import { AdminViews } from './views';
import { routeTestRouter } from './route-test';

export { readiness } from './readiness';
export { createMetrics } from './metrics';
export { AdminAuth, tokenMatches } from './auth';

export interface AdminMountOptions {
  registry: ModelRegistry;
  egress: EgressService;
  housekeeping?: Housekeeping;
  /** Shared queue: the worker → sender hand-off of results. */
  handoff?: RedisHandoff;
  /** Rate-limit / session settings (tests shorten them). */
  auth?: Omit<AuthOptions, 'token'>;
}

/** Where the page's static files are: beside this module (ts-jest, tsx) or in the source tree (compiled dist). */
export function staticDir(): string {
  const candidates = [path.resolve(__dirname, 'static'), path.resolve(__dirname, '..', '..', '..', 'src', 'admin', 'static')];
  return candidates.find((d) => fs.existsSync(path.join(d, 'index.html'))) ?? candidates[0];
}

const OUTBOX_STATES: OutboxState[] = ['pending', 'sending', 'sent', 'failed', 'dead'];

/** express 4 does not catch rejected promises: answer 503 (the queue backend is unreachable) instead. */
const wrap =
  (fn: (req: Request, res: Response) => Promise<void>) =>
  (req: Request, res: Response): void => {
    fn(req, res).catch((e: Error) => {
      if (!res.headersSent) res.status(503).json({ error: `queue unavailable: ${e.message}` });
    });
  };

export interface MountedAdmin {
  metrics: NodeMetrics;
  auth?: AdminAuth;
}

export function mountAdmin(node: StrokeNode, opts: AdminMountOptions): MountedAdmin {
  const app = node.app;
  const { registry, egress, housekeeping, handoff } = opts;

  app.get(
    '/readyz',
    wrap(async (_req, res) => {
      const r = await readiness(node, registry);
      res.status(r.ready ? 200 : 503).json({ status: r.ready ? 'ready' : 'not ready', ...r });
    }),
  );

  const metrics = createMetrics({ node, registry, egress, housekeeping, handoff });
  app.get('/metrics', async (_req, res) => {
    try {
      metrics.refresh();
      res.setHeader('Content-Type', metrics.registry.contentType);
      res.send(await metrics.registry.metrics());
    } catch (e) {
      res.status(500).send(`metrics failed: ${(e as Error).message}`);
    }
  });

  const token = node.config.admin.token;
  if (!token) {
    const disabled = (_req: Request, res: Response) =>
      res
        .status(503)
        .type('text/plain')
        .send('The admin page is disabled: no admin token is configured.\nSet admin.token (at least 16 characters) in the node configuration and restart the node.\n');
    app.use('/admin', disabled);
    log.info('admin page disabled (no admin.token)', { event: 'admin.disabled' });
    return { metrics };
  }

  const auth = new AdminAuth({ token, ...opts.auth });
  app.use('/admin', adminRouter(node, opts, auth));
  return { metrics, auth };
}

function adminRouter(node: StrokeNode, opts: AdminMountOptions, auth: AdminAuth): Router {
  const r = express.Router();
  const views = new AdminViews({ node, registry: opts.registry, egress: opts.egress, housekeeping: opts.housekeeping, handoff: opts.handoff });
  const dir = staticDir();

  r.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          connectSrc: ["'self'"],
          fontSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          baseUri: ["'self'"],
          objectSrc: ["'none'"],
        },
      },
      // Served over plain HTTP on a hospital LAN as often as behind TLS: HSTS is the proxy's business.
      strictTransportSecurity: false,
    }),
  );
  r.use((_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  r.use(express.json({ limit: '16kb' }));
  r.use(express.urlencoded({ extended: false, limit: '4kb' }));

  // Static assets carry no data: served without a session so the login page can use them.
  r.use('/assets', express.static(dir, { index: false, fallthrough: false }));

  r.get('/login', (_req, res) => res.sendFile(path.join(dir, 'login.html')));
  r.post('/login', auth.failureLimiter, (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const sid = auth.login(body.token);
    const wantsJson = !!req.is('application/json');
    if (!sid) {
      log.warn('admin: login refused', { event: 'admin.login_failed', ip: req.ip });
      if (wantsJson) res.status(401).json({ error: 'wrong token' });
      else res.status(401).type('html').send('<!doctype html><title>Login refused</title><p>Wrong token. <a href="/admin/login">Try again</a></p>');
      return;
    }
    log.info('admin: login', { event: 'admin.login', ip: req.ip });
    res.setHeader('Set-Cookie', auth.sessionCookie(sid, req.secure));
    if (wantsJson) res.json({ ok: true });
    else res.redirect(303, '/admin/');
  });
  r.post('/logout', (req, res) => {
    auth.logout(req);
    res.setHeader('Set-Cookie', auth.clearCookie(req.secure));
    res.json({ ok: true });
  });

  r.get('/', (req, res) => {
    if (!auth.check(req).ok) {
      res.redirect(302, '/admin/login');
      return;
    }
    res.sendFile(path.join(dir, 'index.html'));
  });

  const api = express.Router();
  api.use(auth.failureLimiter, auth.requireApi);
  const limitOf = (req: Request, def: number, max = 500): number => {
    const n = Number(req.query.limit);
    return Number.isInteger(n) && n > 0 ? Math.min(n, max) : def;
  };
  api.get('/status', wrap(async (_req, res) => void res.json(await views.status())));
  api.get('/models', (_req, res) => res.json({ models: views.models() }));
  api.get('/queue', wrap(async (req, res) => void res.json(await views.queue(limitOf(req, 50)))));
  api.get('/studies', wrap(async (req, res) => void res.json({ studies: await views.studies(limitOf(req, 50)) })));
  /** One study: every job, its series decisions, tasks, timings, objects and where each went. */
  api.get(
    '/studies/:key',
    wrap(async (req, res) => {
      const uid = await views.resolveStudy(req.params.key);
      if (!uid) return void res.status(404).json({ error: 'no such study (give a job id, the study reference or the Study Instance UID)' });
      res.json(await views.studyDetail(uid));
    }),
  );
  api.get('/alerts', wrap(async (_req, res) => void res.json({ alerts: await views.alerts() })));
  api.get('/outbox/groups', (req, res) => res.json({ groups: views.outboxGroups(limitOf(req, 100)) }));
  api.get('/destinations', (_req, res) => res.json({ destinations: views.destinations() }));
  api.get('/outbox', (req, res) => {
    const states = String(req.query.state ?? '')
      .split(',')
      .filter((s): s is OutboxState => (OUTBOX_STATES as string[]).includes(s));
    const destination = typeof req.query.destination === 'string' && req.query.destination ? req.query.destination : undefined;
    res.json({ rows: views.outbox({ destination, state: states.length ? states : undefined, limit: limitOf(req, 200) }) });
  });
  /** Everything the page shows, in one request (the page polls this every 2 s). */
  api.get(
    '/overview',
    wrap(async (req, res) => {
      const [status, queue, studies] = await Promise.all([views.status(), views.queue(20), views.studies(limitOf(req, 30, 200))]);
      const alerts = await views.alerts({ disk: status.disk, queue: status.queue });
      res.json({
        status,
        alerts,
        outboxGroups: views.outboxGroups(100),
        models: views.models(),
        queue,
        studies,
        destinations: views.destinations(),
        outbox: views.outbox({ state: ['pending', 'sending', 'failed', 'dead'], limit: 100 }),
      });
    }),
  );

  // ---- actions ----
  const act = (name: string, req: Request, detail: Record<string, unknown>) =>
    log.info('admin action', { event: 'admin.action', action: name, ip: req.ip, ...detail });
  const idParam = (req: Request): number | undefined => {
    const n = Number(req.params.id);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  };

  api.post(
    '/actions/jobs/:id/retry',
    wrap(async (req, res) => {
      const id = idParam(req);
      const job = id ? await node.queue.get(id) : undefined;
      if (!id || !job) return void res.status(404).json({ error: `no job ${req.params.id}` });
      if (!['failed', 'dead', 'not_processed'].includes(job.state)) {
        return void res.status(409).json({ error: `job ${id} is ${job.state}; only failed, dead or not-processed jobs can be retried` });
      }
      const ok = await node.queue.retry(id);
      act('job.retry', req, { job: id, ok });
      res.status(ok ? 200 : 409).json({ ok, job: views.job((await node.queue.get(id))!) });
    }),
  );
  api.post('/actions/outbox/:id/retry', (req, res) => {
    const id = idParam(req);
    const row = id ? opts.egress.outbox.get(id) : undefined;
    if (!id || !row) return void res.status(404).json({ error: `no outbox row ${req.params.id}` });
    const ok = opts.egress.retry(id);
    act('outbox.retry', req, { row: id, ok });
    if (!ok) return void res.status(409).json({ error: `row ${id} is ${row.state}; only dead or failed rows can be retried` });
    res.json({ ok, row: views.outboxRow(opts.egress.outbox.get(id)!) });
  });
  api.post('/actions/destinations/:name/retry-dead', (req, res) => {
    const name = req.params.name;
    if (!node.config.destinations.some((d) => d.name === name)) return void res.status(404).json({ error: `no destination ${name}` });
    const rows = opts.egress.retryDead(name);
    act('destination.retry_dead', req, { destination: name, rows });
    res.json({ ok: true, rows });
  });
  api.post('/actions/destinations/:name/retry-failed', (req, res) => {
    const name = req.params.name;
    if (!node.config.destinations.some((d) => d.name === name)) return void res.status(404).json({ error: `no destination ${name}` });
    const rows = views.retryFailed({ destination: name });
    act('destination.retry_failed', req, { destination: name, rows });
    res.json({ ok: true, rows });
  });
  /** Body (all optional): destination, studyRef (one outbox group), includeDead. Without any: every failed row. */
  api.post('/actions/outbox/retry-failed', (req, res) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const destination = typeof b.destination === 'string' && b.destination ? b.destination : undefined;
    const studyRef = typeof b.studyRef === 'string' && b.studyRef ? b.studyRef : undefined;
    if (destination && !node.config.destinations.some((d) => d.name === destination)) return void res.status(404).json({ error: `no destination ${destination}` });
    const rows = views.retryFailed({ destination, studyRef, includeDead: b.includeDead === true });
    act('outbox.retry_failed', req, { destination, study: studyRef, includeDead: b.includeDead === true, rows });
    res.json({ ok: true, rows });
  });
  api.post(
    '/studies/:key/reprocess',
    wrap(async (req, res) => {
      const uid = await views.resolveStudy(req.params.key);
      if (!uid) return void res.status(404).json({ error: 'no such study' });
      const r = await node.reprocess(uid);
      act('study.reprocess', req, { study: views.studyRefOf(uid), ok: r.ok });
      if (!r.ok) return void res.status(r.status).json({ error: r.error });
      res.json({ ok: true, job: views.job(r.job) });
    }),
  );
  api.post(
    '/actions/handoffs/retry-failed',
    wrap(async (req, res) => {
      if (!opts.handoff) return void res.status(404).json({ error: 'no shared egress hand-off: queue.backend is not redis' });
      const jobs = await opts.handoff.retryFailed();
      act('handoffs.retry_failed', req, { jobs });
      res.json({ ok: true, jobs });
    }),
  );
  // While a reload holds processing paused, pause/resume from an operator set what happens after it.
  let reloading: Promise<unknown> | null = null;
  let pausedAfterReload = false;
  api.post('/actions/models/reload', async (req, res) => {
    if (reloading) return void res.status(409).json({ error: 'a reload is already running' });
    act('models.reload', req, {});
    pausedAfterReload = node.paused;
    node.paused = true; // no new job starts on a half-loaded registry
    try {
      reloading = (async () => {
        await node.idle();
        return opts.registry.loadAll();
      })();
      await reloading;
      res.json({ ok: true, models: views.models() });
    } catch (e) {
      res.status(500).json({ error: (e as Error).message });
    } finally {
      reloading = null;
      node.paused = pausedAfterReload;
    }
  });
  const setPaused = (paused: boolean): boolean => {
    if (reloading) pausedAfterReload = paused;
    else node.paused = paused;
    return paused;
  };
  api.post('/actions/pause', (req, res) => {
    act('processing.pause', req, {});
    res.json({ ok: true, paused: setPaused(true) });
  });
  api.post('/actions/resume', (req, res) => {
    act('processing.resume', req, {});
    res.json({ ok: true, paused: setPaused(false) });
  });
  api.post('/actions/housekeeping/:task', async (req, res) => {
    const task = req.params.task as HousekeepingTask;
    if (!opts.housekeeping) return void res.status(404).json({ error: 'housekeeping is not running in this node' });
    if (!HOUSEKEEPING_TASKS.includes(task)) return void res.status(404).json({ error: `unknown task ${task} (${HOUSEKEEPING_TASKS.join(', ')})` });
    act('housekeeping.run', req, { task });
    const run = await opts.housekeeping.runOnce(task);
    res.status(run.ok ? 200 : 500).json(run);
  });
  api.use('/routes', routeTestRouter(node, opts.registry)); // routing rule tester (route-test.ts)
  api.use((_req, res) => res.status(404).json({ error: 'no such admin API endpoint' }));

  r.use('/api', api);
  return r;
}
