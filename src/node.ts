/**
 * The node: composes the stages. Nothing here knows DICOM details; it wires
 * ingest → store → jobs (stability) → processor (study + pipelines + results) → egress.
 */
import { EventEmitter } from 'events';
import * as http from 'http';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import express from 'express';
import { Config, Route } from './config/schema';
import { openDb, Db } from './store/db';
import { InstanceStore, ArrivalHint } from './store/instances';
import { DimseReceiver } from './ingest/dimse-scp';
import { stowRouter, StowRouter } from './ingest/stow';
import { InstanceLimits } from './dicom/validate';
import { EmbeddedQueue, JobQueue, QueueStartContext, StabilityRule, StudyJob } from './jobs/queue';
import { Roles, resolveRoles } from './config/roles';
import { StoredInstance } from './types';
import { log, ref } from './util/log';
import { logTlsClientErrors, serverTlsOptions } from './net/tls';

/** limits.* in bytes, as the validator takes them. */
export function instanceLimits(config: Config): InstanceLimits {
  return { maxInstanceBytes: config.limits.maxInstanceMb * 1024 * 1024, maxSequenceDepth: config.limits.maxSequenceDepth, maxElements: config.limits.maxElements };
}

/** At shutdown, how long HTTP requests still open may take before their connections are closed. */
const HTTP_GRACE_MS = 2000;

export const NODE_VERSION: string = (() => {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require(path.resolve(__dirname, '..', 'package.json')).version as string;
  } catch {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require(path.resolve(__dirname, '..', '..', 'package.json')).version as string;
  }
})();

export interface ProcessResult {
  state: 'done' | 'not_processed';
  outcome: unknown;
}

/** What a processor gets: the job, its instances, and the route it came in on. */
export type StudyProcessor = (job: StudyJob, instances: StoredInstance[], route: Route) => Promise<ProcessResult>;

export interface NodeHooks {
  processor?: StudyProcessor;
  /** A queue backend built by the caller (tests); default: from `queue.backend` in the config. */
  queue?: JobQueue;
  /** Extra express routers (admin, metrics) mounted by main. */
  mount?: (app: express.Express, node: StrokeNode) => void;
}

/**
 * Events the node emits (metrics and the admin page subscribe; stages never depend on listeners):
 *  'instance'  (e: { transport: 'dimse' | 'stow'; bytes: number; status: 'stored' | 'duplicate' })
 *  'ingest-failure' (e: { transport: 'dimse' | 'stow'; reason: string })
 *  'study-ready' (job: StudyJob)
 *  'study-finished' (e: { job: StudyJob; state: JobState; ms: number; outcome: unknown; error?: string })
 */
export type NodeEvents = EventEmitter;

export function matchRoute(routes: Route[], calledAe: string | undefined, callingAe: string): Route | undefined {
  return routes.find(
    (r) => (!r.match.calledAeTitle || r.match.calledAeTitle === calledAe) && (!r.match.callingAeTitle || r.match.callingAeTitle === callingAe),
  );
}

export class StrokeNode {
  readonly db: Db;
  readonly store: InstanceStore;
  readonly queue: JobQueue;
  /** What this process does (receiver / worker / sender): from `roles` in the config. */
  readonly roles: Roles;
  readonly dimse?: DimseReceiver;
  readonly app: express.Express;
  private httpServer?: http.Server | https.Server;
  /** The STOW-RS receiver (receiver role): ended at shutdown. */
  private stow?: StowRouter;
  private ticker?: NodeJS.Timeout;
  private working = false;
  private ticking: Promise<void> = Promise.resolve();
  private tickBusy = false;
  private stopping = false;
  paused = false;
  readonly startedAt = Date.now();
  readonly events: NodeEvents = new EventEmitter();
  private readonly rules: Map<string, StabilityRule>;
  private processor: StudyProcessor;
  /** Services started after the receivers and stopped before the database closes (egress, models, cron). */
  private services: { name: string; start(): Promise<void> | void; stop(): Promise<void> | void }[] = [];
  /** Promise of the job in progress (tests and shutdown wait on it). */
  private inFlight: Promise<void> = Promise.resolve();

  constructor(
    readonly config: Config,
    hooks: NodeHooks = {},
  ) {
    this.db = openDb(config.storage.dir);
    this.store = new InstanceStore(this.db, config.storage.dir, config.storage.minFreeMb, config.storage.fsync, instanceLimits(config));
    this.roles = resolveRoles(config.roles);
    this.queue = hooks.queue ?? createQueue(config, this.db);
    this.rules = new Map(
      config.routes.map((r) => [
        r.name,
        { route: r.name, quietPeriodMs: r.quietPeriodSeconds * 1000, requiredSeries: r.requiredSeries as ArrivalHint[], priority: r.priority },
      ]),
    );
    this.processor = hooks.processor ?? (async () => ({ state: 'not_processed', outcome: { reason: 'no processor configured' } }));

    this.store.onStored((r, ctx) => {
      if (r.status !== 'stored') return; // duplicates are counted, never reprocessed
      const route = matchRoute(config.routes, ctx.calledAe, ctx.sourceAe);
      if (!route) {
        log.warn('instance matches no route; kept but not processed', { event: 'route.none', study: ref(r.instance.studyInstanceUid), callingAe: ctx.sourceAe });
        return;
      }
      // The embedded backend records the arrival synchronously inside this call; the Redis backend
      // first writes it to a local pending table (synchronously), then to Redis.
      this.queue.noteArrival(r.instance.studyInstanceUid, route.name, r.hint, route.priority, Date.now(), r.instance).catch((e: Error) =>
        log.error('could not note an arrival in the queue (kept locally, retried)', { event: 'queue.arrival_failed', study: ref(r.instance.studyInstanceUid), error: e.message }),
      );
    });

    if (config.dimse.enabled && this.roles.receiver) {
      this.dimse = new DimseReceiver(config.dimse, this.store, {
        onInstance: (bytes, status) => this.events.emit('instance', { transport: 'dimse', bytes, status }),
        onFailure: (reason) => this.events.emit('ingest-failure', { transport: 'dimse', reason }),
      }, instanceLimits(config));
    }

    this.app = express();
    this.app.disable('x-powered-by');
    this.app.get('/healthz', (_req, res) => res.json({ status: 'ok', version: NODE_VERSION, uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000) }));
    if (this.roles.receiver) {
      this.app.use(
        '/dicom-web',
        (this.stow = stowRouter(this.store, {
          bearerToken: config.http.stowBearerToken,
          publicBase: () => `${this.httpScheme}://${config.http.host}:${this.httpPort}/dicom-web`,
          onInstance: (bytes, status) => this.events.emit('instance', { transport: 'stow', bytes, status }),
          onFailure: (reason) => this.events.emit('ingest-failure', { transport: 'stow', reason }),
          maxBodyBytes: config.http.maxStowBodyMb * 1024 * 1024,
          maxParts: config.http.maxStowParts,
          authFailuresPerWindow: config.http.stowAuthFailuresPerWindow,
          instanceLimits: { maxInstanceBytes: config.limits.maxInstanceMb * 1024 * 1024, maxSequenceDepth: config.limits.maxSequenceDepth, maxElements: config.limits.maxElements },
        })),
      );
    }
    hooks.mount?.(this.app, this);
  }

  get httpPort(): number {
    const a = this.httpServer?.address();
    return a && typeof a === 'object' ? a.port : this.config.http.port;
  }

  /** `https` when `http.tls` is set: every URL the node advertises uses it. */
  get httpScheme(): 'http' | 'https' {
    return this.config.http.tls ? 'https' : 'http';
  }

  get dimsePort(): number | undefined {
    return this.dimse?.port;
  }

  /** What the worker side can run (set by wiring from the model registry), for a shared queue. */
  workerInfo?: () => Pick<QueueStartContext, 'cannotRun' | 'executionProvider'>;

  setProcessor(p: StudyProcessor): void {
    this.processor = p;
  }

  addService(s: { name: string; start(): Promise<void> | void; stop(): Promise<void> | void }): void {
    this.services.push(s);
  }

  async start(): Promise<void> {
    const rec = this.store.recover();
    if (rec.removedTemp || rec.reindexed || rec.droppedRows) log.info('store recovered after restart', { event: 'store.recovered', ...rec });
    for (const s of this.services) await s.start();
    // After the services: a worker subscribes only to routes whose models loaded.
    await this.queue.start?.({ rules: this.rules, roles: this.roles, ...this.workerInfo?.() });
    await this.dimse?.start();
    if (this.config.http.tls) {
      // HTTPS on the same port and app; the PEM files are read now (a bad one fails start-up naming its key).
      const server = https.createServer(serverTlsOptions(this.config.http.tls, 'http.tls'), this.app);
      logTlsClientErrors(server, 'http');
      this.httpServer = server;
    } else {
      this.httpServer = http.createServer(this.app);
    }
    await new Promise<void>((resolve, reject) => {
      this.httpServer!.once('error', reject);
      this.httpServer!.listen(this.config.http.port, this.config.http.host, () => resolve());
    });
    log.info('HTTP listening', {
      event: 'http.listening',
      host: this.config.http.host,
      port: this.httpPort,
      tls: Boolean(this.config.http.tls),
      admin: this.config.admin.token ? this.adminUrl : 'disabled (no admin.token)',
    });
    this.ticker = setInterval(() => void this.tick(), 250);
  }

  /**
   * One scheduler step: promote stable studies, run one ready job if idle (one job at a time per
   * process: one worker process per GPU). Steps never overlap; a queue error is logged and the next
   * step tries again (a Redis restart is survived this way).
   */
  tick(now = Date.now()): Promise<void> {
    if (this.tickBusy || this.stopping) return this.ticking;
    this.tickBusy = true;
    this.ticking = this.step(now)
      .catch((e: Error) => void log.warn('queue step failed; retrying', { event: 'queue.step_failed', error: e.message }))
      .finally(() => {
        this.tickBusy = false;
      });
    return this.ticking;
  }

  private async step(now: number): Promise<void> {
    for (const j of await this.queue.promoteStable(this.rules, now)) {
      this.events.emit('study-ready', j);
      log.info('study stable, handed on', { event: 'study.ready', job: j.id, study: ref(j.studyUid), instances: j.instanceCount, handoff: j.handoff, linkedTo: j.previousJobId });
    }
    if (!this.roles.worker || this.working || this.paused || this.stopping) return;
    this.working = true;
    let job: StudyJob | undefined;
    try {
      job = await this.queue.claim(now);
    } finally {
      if (!job) this.working = false;
    }
    if (!job) return;
    log.info('study job started', { event: 'study.started', job: job.id, study: ref(job.studyUid), attempt: job.attempts, node: this.config.nodeName });
    this.inFlight = this.runJob(job).finally(() => {
      this.working = false;
    });
  }

  private async runJob(job: StudyJob): Promise<void> {
    const route = this.config.routes.find((r) => r.name === job.route) ?? this.config.routes[0];
    const t0 = Date.now();
    try {
      const instances = this.queue.instances ? await this.queue.instances(job) : this.store.listStudy(job.studyUid);
      const r = await this.processor(job, instances, route);
      // An operator asked for this run (admin page "Reprocess"): the outcome says so.
      if (job.handoff === 'operator-reprocess' && r.outcome && typeof r.outcome === 'object') {
        r.outcome = { ...(r.outcome as Record<string, unknown>), manualReprocess: { previousJobId: job.previousJobId, requestedAt: job.createdAt } };
      }
      await this.queue.complete(job.id, r.state, r.outcome);
      this.events.emit('study-finished', { job: (await this.queue.get(job.id))!, state: r.state, ms: Date.now() - t0, outcome: r.outcome });
      log.info('study processed', { event: 'study.processed', job: job.id, study: ref(job.studyUid), state: r.state, ms: Date.now() - t0, node: this.config.nodeName });
    } catch (e) {
      try {
        const j = await this.queue.fail(job.id, (e as Error).message, this.config.queue.maxAttempts);
        this.events.emit('study-finished', { job: j, state: j.state, ms: Date.now() - t0, outcome: null, error: (e as Error).message });
        log.error('study processing failed', { event: 'study.failed', job: job.id, study: ref(job.studyUid), error: (e as Error).message, state: j.state });
      } catch (e2) {
        // The queue itself is unreachable: the job's lease runs out and it is handed on again.
        log.error('study failed and the queue could not record it', { event: 'study.failed', job: job.id, error: (e as Error).message, queueError: (e2 as Error).message });
      }
    }
  }

  /**
   * Operator: process a stored study again on purpose (admin page "Reprocess"). A new job on the
   * route of the study's latest job, ready at once; its outcome records `manualReprocess`.
   */
  async reprocess(studyUid: string): Promise<{ ok: true; job: StudyJob } | { ok: false; status: number; error: string }> {
    const instances = this.store.listStudy(studyUid);
    if (!instances.length) return { ok: false, status: 404, error: 'no instance of this study is stored here (removed by retention?)' };
    const latest = (await this.queue.list({ limit: 1000 })).find((j) => j.studyUid === studyUid);
    const route = this.config.routes.find((r) => r.name === latest?.route) ?? this.config.routes[0];
    if (!route) return { ok: false, status: 409, error: 'no route configured' };
    let job: StudyJob | undefined;
    if (this.queue.reprocess) job = await this.queue.reprocess(studyUid, route.name, route.priority, instances.length);
    else if (latest && (await this.queue.retry(latest.id))) job = await this.queue.get(latest.id); // shared queue: the latest job runs again
    if (!job) return { ok: false, status: 409, error: 'a job of this study is still collecting, waiting or running' };
    log.info('study reprocess requested by an operator', { event: 'study.reprocess', job: job.id, study: ref(studyUid), previousJob: latest?.id ?? null });
    return { ok: true, job };
  }

  /** The admin page's address as an operator would open it (host 0.0.0.0 / :: → this machine's name). */
  get adminUrl(): string {
    const h = this.config.http.host;
    const host = !h || h === '0.0.0.0' || h === '::' ? os.hostname() : h.includes(':') ? `[${h}]` : h;
    return `${this.httpScheme}://${host}:${this.httpPort}/admin/`;
  }

  /** Wait until no job is running (tests, shutdown). */
  async idle(): Promise<void> {
    await this.inFlight;
  }

  /**
   * Stop the HTTP port without waiting on clients: idle connections close at once, open STOW-RS
   * transfers are ended (answered 503, partial files removed, parts being committed finish), other
   * requests get HTTP_GRACE_MS to finish, then every connection is closed.
   */
  private async closeHttp(): Promise<void> {
    const server = this.httpServer;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections?.();
    await this.stow?.close(HTTP_GRACE_MS);
    await Promise.race([closed, new Promise((r) => setTimeout(r, HTTP_GRACE_MS).unref())]);
    server.closeAllConnections?.();
    await closed;
  }

  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.stopping = true;
    // A step waiting on an unreachable shared queue must not hold the shutdown forever.
    await Promise.race([this.ticking, new Promise((r) => setTimeout(r, 5000).unref())]);
    await this.dimse?.stop();
    await this.closeHttp();
    await this.inFlight;
    for (const s of [...this.services].reverse()) await s.stop();
    await this.queue.close?.();
    this.store.close();
    this.db.close();
  }
}

/** The queue backend named by `queue.backend`: embedded SQLite (default) or BullMQ/Redis. */
export function createQueue(config: Config, db: Db): JobQueue {
  if (config.queue.backend === 'redis') {
    // Loaded only when chosen: the embedded default never loads the Redis client.
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { RedisQueue } = require('./jobs/redis-queue') as typeof import('./jobs/redis-queue');
    return new RedisQueue(db, config);
  }
  return new EmbeddedQueue(db, config.queue.offPeak);
}
