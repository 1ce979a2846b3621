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
import type { NaturalDataset } from './dicom/dcmjs';
import { RouteMatch, RoutingFacts, chooseRoute, collectFields, compilePatterns, matchConditions, seriesFacts } from './pipelines/routing';
import { readHeader } from './study/header';

/** Routing fields the arrival header (the store's index scan) always carries. */
const ARRIVAL_HEADER_FIELDS = new Set(['calledAeTitle', 'callingAeTitle', 'Modality', 'SeriesDescription']);
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

/**
 * Where a study's route is chosen (docs/routing.md): at ARRIVAL, instance by instance, on what the node has
 * seen of the study so far in this process — the AE titles of the association (or STOW-RS), the study-level
 * attributes and one header per series received (Modality, SeriesDescription, ... of every series so far) and
 * the local time. Routes are tried in configuration order; the first that matches wins and the study is
 * PINNED to it: later instances (and a re-sent study, while the pin is remembered) join that route, so one
 * study is never split between routes. An instance of a study no route matches yet is kept and held back;
 * when a later instance makes a route match (e.g. the series a rule looks for arrives) the held instances
 * are noted on that route too. A study no route ever matches is kept, not processed (route.none in the log),
 * and removed by retention like any other.
 */
export class StudyRouter {
  private views = new Map<string, { series: Map<string, Record<string, string | undefined>>; pinned?: string; held: { hint: ArrivalHint; instance: StoredInstance }[]; logged?: boolean }>();
  /** Instances held over all unrouted studies (bounded: past maxHeld new ones are not held; see arrive()). */
  private heldTotal = 0;

  /**
   * The arrival header holds only the index attributes (Modality, SeriesDescription, UIDs...): when a route tests
   * another attribute (StudyDescription, BodyPartExamined, ProtocolName, RequestedProcedureDescription...), the
   * first instance of each new series is read from disk up to its pixel data (once per series: ~20 ms for a
   * classic MR/CT header, ~200 ms for an enhanced multi-frame object; docs/routing.md).
   */
  readonly needsFullHeader: boolean;

  constructor(
    private readonly routes: Route[],
    /**
     * Studies remembered (least recently seen dropped first), and instances held over all unrouted studies. An
     * instance not held is still stored: the embedded queue processes every stored instance of the study anyway
     * (it lists the study from the store); the shared queue processes those noted from the route match on.
     */
    private readonly maxStudies = 2000,
    private readonly maxHeld = 50000,
  ) {
    const fields = new Set<string>();
    for (const r of routes) {
      const conds = matchConditions(r.match as RouteMatch);
      compilePatterns(conds);
      collectFields(conds, fields);
    }
    this.needsFullHeader = [...fields].some((f) => !ARRIVAL_HEADER_FIELDS.has(f));
  }

  /** The route for an arriving instance, and the held instances to note with it (empty when none matches yet). */
  arrive(
    instance: StoredInstance,
    header: NaturalDataset,
    hint: ArrivalHint,
    ae: { calledAe?: string; callingAe: string },
    now = new Date(),
  ): { route?: Route; release: { hint: ArrivalHint; instance: StoredInstance }[]; newlyUnrouted: boolean } {
    const uid = instance.studyInstanceUid;
    let v = this.views.get(uid);
    if (v) this.views.delete(uid); // re-insert: Map order is the LRU order
    else v = { series: new Map(), held: [] };
    this.views.set(uid, v);
    while (this.views.size > this.maxStudies) {
      const oldest = this.views.keys().next().value as string;
      this.heldTotal -= this.views.get(oldest)!.held.length;
      this.views.delete(oldest);
    }
    if (!v.series.has(instance.seriesInstanceUid)) {
      const full = this.needsFullHeader ? readHeader(instance) : undefined;
      v.series.set(instance.seriesInstanceUid, seriesFacts(full && !full.error ? full.ds : header));
    }
    if (v.pinned) {
      const r = this.routes.find((x) => x.name === v!.pinned);
      if (r) return { route: r, release: [], newlyUnrouted: false };
    }
    const facts: RoutingFacts = { calledAeTitle: ae.calledAe, callingAeTitle: ae.callingAe, series: [...v.series.values()], now };
    const { route } = chooseRoute(this.routes, facts);
    if (!route) {
      if (this.heldTotal < this.maxHeld) {
        v.held.push({ hint, instance });
        this.heldTotal++;
      }
      const first = !v.logged;
      v.logged = true;
      return { release: [], newlyUnrouted: first };
    }
    v.pinned = route.name;
    const release = v.held;
    this.heldTotal -= release.length;
    v.held = [];
    return { route, release, newlyUnrouted: false };
  }
}

/** The route of a study with only AE titles known (compatibility: routes without tag conditions). */
export function matchRoute(routes: Route[], calledAe: string | undefined, callingAe: string): Route | undefined {
  return chooseRoute(routes, { calledAeTitle: calledAe, callingAeTitle: callingAe, series: [], now: new Date() }).route;
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

    const router = new StudyRouter(config.routes);
    this.store.onStored((r, ctx) => {
      if (r.status !== 'stored') return; // duplicates are counted, never reprocessed
      const studyUid = r.instance.studyInstanceUid;
      const { route, release, newlyUnrouted } = router.arrive(r.instance, r.header, r.hint, { calledAe: ctx.calledAe, callingAe: ctx.sourceAe });
      if (!route) {
        if (newlyUnrouted) log.warn('instance matches no route; kept, held until a route matches', { event: 'route.none', study: ref(studyUid), callingAe: ctx.sourceAe });
        return;
      }
      // The embedded backend records the arrival synchronously inside this call; the Redis backend
      // first writes it to a local pending table (synchronously), then to Redis.
      const note = (hint: ArrivalHint, instance: StoredInstance) =>
        this.queue.noteArrival(studyUid, route.name, hint, route.priority, Date.now(), instance).catch((e: Error) =>
          log.error('could not note an arrival in the queue (kept locally, retried)', { event: 'queue.arrival_failed', study: ref(studyUid), error: e.message }),
        );
      if (release.length) log.info('study now matches a route; held instances noted', { event: 'route.matched_late', study: ref(studyUid), route: route.name, held: release.length });
      for (const h of release) void note(h.hint, h.instance);
      void note(r.hint, r.instance);
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
