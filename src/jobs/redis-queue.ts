/**
 * The shared queue backend: BullMQ on Redis, for several receivers and several workers on several
 * machines (`queue.backend: redis`). Same `JobQueue` interface as the embedded SQLite backend, so
 * the node and the stages do not know which one runs.
 *
 * What lives where
 *  - Pixel data never goes through Redis. A receiver stores each instance in its own storage.dir,
 *    which a multi-machine deployment puts on a shared filesystem mounted at the same path
 *    everywhere; the job carries the instance's reference (UIDs + absolute path, a few hundred
 *    bytes) in `<prefix>:q:refs:<job>`.
 *  - The study job record (state, counts, hints, outcome: what the admin page shows) is a Redis hash
 *    `<prefix>:q:job:<id>` with one sorted set per state; every change is one Lua script, so two
 *    receivers noting instances of one study at the same moment cannot open two jobs.
 *  - Study stability (the quiet period) is a BullMQ delayed job in the `stable` queue, deduplicated
 *    by the study job (StudyInstanceUID + route) and rescheduled at every arrival
 *    (`deduplication: { reschedule: true }`), so the timer lives in Redis and whichever process
 *    notes the last instance pushes it back. When it fires, any process with the receiver or worker
 *    role checks (with Redis' own clock, so machines' clocks do not matter) that nothing arrived
 *    meanwhile, closes the job and queues the work; an instance arriving after that opens a new job
 *    linked to the previous one, as in the embedded backend.
 *  - The work is a BullMQ job in `studies-<route>` (priority: urgent before normal before research;
 *    research waits for `queue.offPeak`), taken by worker processes one at a time (one worker
 *    process per GPU). BullMQ gives the lease (`queue.lockSeconds`, renewed while the worker runs),
 *    stalled-job recovery (a killed worker's job goes back to the queue and another worker takes it),
 *    retries with exponential backoff (`queue.maxAttempts`, `queue.backoffSeconds`), and the final
 *    failure is copied to the `dead` queue (dead-letter) until an operator retries it.
 *  - An arrival is first written to a local SQLite table, then to Redis, then deleted locally: an
 *    instance acknowledged while Redis was down is noted when Redis is back, or at the next start.
 *
 * Delivery is at least once: a worker that loses its lease (frozen longer than lockSeconds) may see
 * its job run again elsewhere. Results are idempotent per job (same job id, same output folder).
 */
import * as crypto from 'crypto';
import { DelayedError, Job, Queue, Worker } from 'bullmq';
import Redis from 'ioredis';
import type { Config } from '../config/schema';
import type { Db } from '../store/db';
import type { ArrivalHint } from '../store/instances';
import type { StoredInstance } from '../types';
import { log } from '../util/log';
import { withTimeout } from '../util/timeout';
import { JobQueue, JobState, offPeakDelayMs, Priority, QueueStartContext, REQUIRED_SERIES_SETTLE_MS, StabilityRule, StudyJob } from './queue';

const STATES: JobState[] = ['collecting', 'ready', 'running', 'done', 'not_processed', 'failed', 'dead'];
const BULL_PRIORITY: Record<Priority, number> = { urgent: 1, normal: 2, research: 3 };
const PRIORITY_RANK: Record<Priority, number> = { urgent: 0, normal: 1, research: 2 };

/** Lua: one shared helper to move a job between state sets, then each operation. */
const SET_STATE = `
local function setState(P, id, newState)
  local jk = P..':q:job:'..id
  local old = redis.call('HGET', jk, 'state')
  if old then redis.call('ZREM', P..':q:state:'..old, id) end
  redis.call('ZADD', P..':q:state:'..newState, tonumber(id), id)
  redis.call('HSET', jk, 'state', newState)
end
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

const SCRIPTS = {
  /** ARGV: P, studyUid, route, priority, hint, sopInstanceUid ('' = none), reference JSON */
  arrive: `${SET_STATE}
local P, uid, route = ARGV[1], ARGV[2], ARGV[3]
local openKey = P..':q:open:'..route..':'..uid
local lastKey = P..':q:last:'..route..':'..uid
local now = nowMs()
local id = redis.call('GET', openKey)
if not id then
  id = tostring(redis.call('INCR', P..':q:seq'))
  local prev = redis.call('GET', lastKey) or ''
  redis.call('SET', openKey, id)
  redis.call('SET', lastKey, id)
  redis.call('HSET', P..':q:job:'..id, 'id', id, 'studyUid', uid, 'route', route, 'priority', ARGV[4],
    'createdAt', now, 'lastInstanceAt', now, 'instanceCount', 0, 'hints', '', 'attempts', 0, 'previousJobId', prev)
  redis.call('ZADD', P..':q:all', tonumber(id), id)
  setState(P, id, 'collecting')
end
local jk = P..':q:job:'..id
local added = 1
if ARGV[6] ~= '' then added = redis.call('HSETNX', P..':q:refs:'..id, ARGV[6], ARGV[7]) end
if added == 1 then redis.call('HINCRBY', jk, 'instanceCount', 1) end
redis.call('HSET', jk, 'lastInstanceAt', now)
local hints = redis.call('HGET', jk, 'hints') or ''
if not string.find(','..hints..',', ','..ARGV[5]..',', 1, true) then
  if hints == '' then hints = ARGV[5] else hints = hints..','..ARGV[5] end
  redis.call('HSET', jk, 'hints', hints)
end
return {id, hints}
`,
  /**
   * ARGV: P, id, quietMs, settleMs, required (comma list). Returns {'ready', handoff} when the job
   * is (now, or already) ready to be queued, {'wait', ms} when an instance arrived meanwhile,
   * {'gone', ''} when it was closed and taken already.
   */
  close: `${SET_STATE}
local P, id = ARGV[1], ARGV[2]
local quiet, settle, req = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local jk = P..':q:job:'..id
local state = redis.call('HGET', jk, 'state')
if state == 'ready' then return {'ready', redis.call('HGET', jk, 'handoff') or ''} end
if state ~= 'collecting' then return {'gone', ''} end
local now = nowMs()
local since = now - tonumber(redis.call('HGET', jk, 'lastInstanceAt'))
local allReq = false
if req ~= '' then
  local hints = ','..(redis.call('HGET', jk, 'hints') or '')..','
  allReq = true
  for r in string.gmatch(req, '[^,]+') do
    if not string.find(hints, ','..r..',', 1, true) then allReq = false end
  end
end
local handoff = false
if since >= quiet then handoff = 'quiet-period'
elseif allReq and since >= settle then handoff = 'required-series' end
if not handoff then
  local wait = quiet - since
  if allReq then wait = settle - since end
  return {'wait', tostring(wait)}
end
local openKey = P..':q:open:'..redis.call('HGET', jk, 'route')..':'..redis.call('HGET', jk, 'studyUid')
if redis.call('GET', openKey) == id then redis.call('DEL', openKey) end
setState(P, id, 'ready')
redis.call('HSET', jk, 'readyAt', now, 'handoff', handoff)
return {'ready', handoff}
`,
  /**
   * Operator reprocess. ARGV: P, studyUid, route, priority, instanceCount, then every configured route
   * name. Refuses ('' returned) while any job of the study, on any route, in any job of its chain, is
   * collecting / ready / running / failed, as the embedded backend does. Otherwise a NEW job, ready at
   * once, handoff 'operator-reprocess', linked to the study's latest job (highest id over the routes'
   * last jobs), so instances() covers the whole study; it becomes the route's last job, so a later
   * instance links to it. Returns the new id.
   */
  reprocess: `${SET_STATE}
local P, uid, route = ARGV[1], ARGV[2], ARGV[3]
local prev = nil
for i = 6, #ARGV do
  if redis.call('EXISTS', P..':q:open:'..ARGV[i]..':'..uid) == 1 then return '' end
  local id = redis.call('GET', P..':q:last:'..ARGV[i]..':'..uid)
  if id and (prev == nil or tonumber(id) > tonumber(prev)) then prev = id end
  local hops = 0
  while id and id ~= '' and hops < 100 do
    local st = redis.call('HGET', P..':q:job:'..id, 'state')
    if st == 'collecting' or st == 'ready' or st == 'running' or st == 'failed' then return '' end
    id = redis.call('HGET', P..':q:job:'..id, 'previousJobId')
    hops = hops + 1
  end
end
local now = nowMs()
local id = tostring(redis.call('INCR', P..':q:seq'))
redis.call('HSET', P..':q:job:'..id, 'id', id, 'studyUid', uid, 'route', route, 'priority', ARGV[4],
  'createdAt', now, 'lastInstanceAt', now, 'instanceCount', tonumber(ARGV[5]), 'hints', '', 'attempts', 0,
  'previousJobId', prev or '', 'readyAt', now, 'handoff', 'operator-reprocess')
redis.call('ZADD', P..':q:all', tonumber(id), id)
redis.call('SET', P..':q:last:'..route..':'..uid, id)
setState(P, id, 'ready')
return id
`,
  /** ARGV: P, id, newState, field, value, … ('' deletes the field). Returns 0 if no such job. */
  update: `${SET_STATE}
local P, id = ARGV[1], ARGV[2]
local jk = P..':q:job:'..id
if redis.call('EXISTS', jk) == 0 then return 0 end
if ARGV[3] ~= '' then setState(P, id, ARGV[3]) end
for i = 4, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', jk, ARGV[i]) else redis.call('HSET', jk, ARGV[i], ARGV[i + 1]) end
end
return 1
`,
} as const;

interface StableData {
  id: string;
  quietMs: number;
  settleMs: number;
  required: string[];
}

interface StudyData {
  id: number;
  studyUid: string;
  route: string;
}

interface Claimed {
  bull: Job<StudyData>;
  token: string;
  renew: NodeJS.Timeout;
}

export class RedisQueue implements JobQueue {
  readonly backend = 'redis' as const;
  private readonly P: string;
  private readonly redis: Redis;
  private readonly connection: Record<string, unknown>;
  private readonly shas = new Map<keyof typeof SCRIPTS, string>();
  private stableQueue?: Queue<StableData>;
  private stableWorker?: Worker<StableData>;
  private readonly studyQueues = new Map<string, Queue<StudyData>>();
  private deadQueue?: Queue;
  /** Manual-fetch BullMQ workers, one per route this process takes, urgent routes first. */
  private studyWorkers: { route: string; worker: Worker<StudyData> }[] = [];
  private readonly claimed = new Map<number, Claimed>();
  /** Jobs this process handed on since the last promoteStable() (events and logs). */
  private handed: StudyJob[] = [];
  private rules = new Map<string, StabilityRule>();
  private timers: NodeJS.Timeout[] = [];
  private flushing = false;
  /** Pending-arrival rows being written to Redis by noteArrival right now (the flush skips them). */
  private readonly inflight = new Set<number>();
  private readonly lockMs: number;
  private closed = false;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
  ) {
    const r = config.queue.redis;
    this.P = r.prefix;
    this.lockMs = Math.round(config.queue.lockSeconds * 1000);
    // maxRetriesPerRequest null: commands wait for a reconnect instead of failing (BullMQ requires it).
    this.connection = { host: r.host, port: r.port, password: r.password, db: r.db, maxRetriesPerRequest: null };
    this.redis = new Redis({ host: r.host, port: r.port, password: r.password, db: r.db, maxRetriesPerRequest: null });
    this.redis.on('error', (e: Error) => log.warn('redis connection error', { event: 'queue.redis_error', error: e.message }));
    db.exec(`
      CREATE TABLE IF NOT EXISTS queue_pending_arrivals (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        study_uid TEXT NOT NULL,
        route TEXT NOT NULL,
        hint TEXT NOT NULL,
        priority TEXT NOT NULL,
        instance TEXT
      );
    `);
  }

  private queueOpts() {
    return { connection: this.connection, prefix: this.P } as const;
  }

  private studyQueue(route: string): Queue<StudyData> {
    let q = this.studyQueues.get(route);
    if (!q) {
      q = new Queue<StudyData>(`studies-${route}`, this.queueOpts());
      q.on('error', (e: Error) => log.warn('queue error', { event: 'queue.redis_error', queue: `studies-${route}`, error: e.message }));
      this.studyQueues.set(route, q);
    }
    return q;
  }

  private async script(name: keyof typeof SCRIPTS, args: (string | number)[]): Promise<unknown> {
    let sha = this.shas.get(name);
    if (!sha) {
      sha = (await this.redis.script('LOAD', SCRIPTS[name])) as string;
      this.shas.set(name, sha);
    }
    try {
      return await this.redis.evalsha(sha, 0, ...args);
    } catch (e) {
      if (!/NOSCRIPT/.test((e as Error).message)) throw e;
      this.shas.delete(name); // Redis restarted and forgot its scripts
      return this.script(name, args);
    }
  }

  async start(ctx: QueueStartContext): Promise<void> {
    this.rules = ctx.rules;
    this.stableQueue = new Queue<StableData>('stable', this.queueOpts());
    this.stableQueue.on('error', (e: Error) => log.warn('queue error', { event: 'queue.redis_error', queue: 'stable', error: e.message }));
    this.deadQueue = new Queue('dead', this.queueOpts());
    this.deadQueue.on('error', (e: Error) => log.warn('queue error', { event: 'queue.redis_error', queue: 'dead', error: e.message }));
    if (ctx.roles.receiver || ctx.roles.worker) {
      this.stableWorker = new Worker<StableData>('stable', (job, token) => this.onStable(job, token), {
        ...this.queueOpts(),
        concurrency: 8,
        lockDuration: this.lockMs,
        stalledInterval: this.lockMs,
      });
      this.stableWorker.on('error', (e: Error) => log.warn('stability worker error', { event: 'queue.redis_error', error: e.message }));
    }
    if (ctx.roles.worker) {
      const wanted = this.config.queue.workerRoutes;
      const routes = [...this.config.routes].sort((a, b) => PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority]);
      const taken: string[] = [];
      for (const route of routes) {
        if (wanted && !wanted.includes(route.name)) continue;
        const why = ctx.cannotRun?.(route);
        if (why) {
          log.warn('worker does not take this route', { event: 'queue.route_skipped', route: route.name, reason: why });
          continue;
        }
        const worker = new Worker<StudyData>(`studies-${route.name}`, null, {
          ...this.queueOpts(),
          autorun: false,
          concurrency: 1,
          lockDuration: this.lockMs,
          stalledInterval: this.lockMs,
          // A job whose worker died twice is failed (then retried per maxAttempts), not looped forever.
          maxStalledCount: 2,
        });
        worker.on('error', (e: Error) => log.warn('study worker error', { event: 'queue.redis_error', route: route.name, error: e.message }));
        void worker.startStalledCheckTimer().catch((e: Error) => log.warn('stalled check failed', { event: 'queue.redis_error', error: e.message }));
        this.studyWorkers.push({ route: route.name, worker });
        taken.push(route.name);
      }
      const beat = () =>
        this.redis
          .set(
            `${this.P}:q:worker:${this.config.nodeName}`,
            JSON.stringify({ node: this.config.nodeName, pid: process.pid, routes: taken, executionProvider: ctx.executionProvider ?? this.config.inference.executionProviders[0], at: Date.now() }),
            'EX',
            Math.max(10, Math.ceil(this.config.queue.lockSeconds * 3)),
          )
          .catch(() => undefined);
      void beat();
      this.timers.push(setInterval(beat, 10_000));
      log.info('queue worker ready', { event: 'queue.worker', backend: 'redis', routes: taken, executionProvider: ctx.executionProvider });
    }
    // Arrivals noted locally but not yet in Redis (Redis was down, or the process died between).
    this.timers.push(setInterval(() => void this.flushPending(), 2000));
    void this.flushPending();
  }

  // ------------------------------------------------------------------------------------ arrival

  async noteArrival(studyUid: string, route: string, hint: ArrivalHint, priority: Priority, _now?: number, instance?: StoredInstance): Promise<StudyJob> {
    // Synchronously first (same tick as the store's commit): survives Redis being down.
    const seq = Number(
      this.db
        .prepare('INSERT INTO queue_pending_arrivals (study_uid, route, hint, priority, instance) VALUES (?, ?, ?, ?, ?)')
        .run(studyUid, route, hint, priority, instance ? JSON.stringify(instance) : null).lastInsertRowid,
    );
    this.inflight.add(seq);
    try {
      const id = await this.record(studyUid, route, hint, priority, instance);
      this.db.prepare('DELETE FROM queue_pending_arrivals WHERE seq = ?').run(seq);
      return (await this.get(id))!;
    } finally {
      this.inflight.delete(seq);
    }
  }

  private async record(studyUid: string, route: string, hint: ArrivalHint, priority: Priority, instance?: StoredInstance): Promise<number> {
    const [id, hints] = (await this.script('arrive', [
      this.P,
      studyUid,
      route,
      priority,
      hint,
      instance?.sopInstanceUid ?? '',
      instance ? JSON.stringify(instance) : '',
    ])) as [string, string];
    const rule = this.rules.get(route);
    const quietMs = rule?.quietPeriodMs ?? 5000;
    const required = rule?.requiredSeries ?? [];
    const have = new Set(hints.split(','));
    const early = required.length > 0 && required.every((h) => have.has(h));
    const delay = early ? Math.min(REQUIRED_SERIES_SETTLE_MS, quietMs) : quietMs;
    if (!this.stableQueue) throw new Error('queue not started');
    await this.stableQueue.add(
      'stable',
      { id, quietMs, settleMs: REQUIRED_SERIES_SETTLE_MS, required },
      {
        delay,
        // One timer per study job, pushed back by every arrival, whichever receiver notes it.
        deduplication: { id: `${this.P}:${id}`, reschedule: true },
        removeOnComplete: true,
        removeOnFail: 1000,
        attempts: 10,
        backoff: { type: 'fixed', delay: 1000 },
      },
    );
    return Number(id);
  }

  private async flushPending(): Promise<void> {
    if (this.flushing || this.closed || !this.stableQueue) return;
    this.flushing = true;
    try {
      const rows = this.db.prepare('SELECT * FROM queue_pending_arrivals ORDER BY seq LIMIT 500').all() as {
        seq: number;
        study_uid: string;
        route: string;
        hint: ArrivalHint;
        priority: Priority;
        instance: string | null;
      }[];
      let n = 0;
      for (const r of rows) {
        if (this.inflight.has(r.seq)) continue; // noteArrival is on it (or failed and will be retried here)
        n++;
        // Replaying is idempotent: references are keyed by SOP Instance UID, so a second note of
        // the same instance changes nothing but the timer.
        await this.record(r.study_uid, r.route, r.hint, r.priority, r.instance ? (JSON.parse(r.instance) as StoredInstance) : undefined);
        this.db.prepare('DELETE FROM queue_pending_arrivals WHERE seq = ?').run(r.seq);
      }
      if (n) log.info('pending arrivals noted in the shared queue', { event: 'queue.pending_flushed', count: n });
    } catch (e) {
      log.warn('pending arrivals not noted yet', { event: 'queue.pending_retry', error: (e as Error).message });
    } finally {
      this.flushing = false;
    }
  }

  /** The stability timer fired: close the study job if nothing arrived meanwhile, else wait again. */
  private async onStable(job: Job<StableData>, token?: string): Promise<void> {
    const d = job.data;
    const [what, arg] = (await this.script('close', [this.P, d.id, d.quietMs, d.settleMs, d.required.join(',')])) as [string, string];
    if (what === 'wait') {
      await job.moveToDelayed(Date.now() + Math.max(50, Number(arg)), token);
      throw new DelayedError();
    }
    if (what !== 'ready') return;
    const j = await this.get(Number(d.id));
    if (!j) return;
    const delay = j.priority === 'research' ? offPeakDelayMs(this.config.queue.offPeak) : 0;
    await this.studyQueue(j.route).add(
      'study',
      { id: j.id, studyUid: j.studyUid, route: j.route },
      {
        jobId: `job-${j.id}`, // idempotent: a second hand-off of the same job adds nothing
        priority: BULL_PRIORITY[j.priority],
        delay,
        attempts: this.config.queue.maxAttempts,
        backoff: { type: 'exponential', delay: Math.round(this.config.queue.backoffSeconds * 1000) },
        removeOnComplete: { age: this.config.storage.retentionDays * 86400 },
        removeOnFail: false,
      },
    );
    this.handed.push(j);
  }

  async promoteStable(rules: Map<string, StabilityRule>): Promise<StudyJob[]> {
    this.rules = rules;
    const out = this.handed;
    this.handed = [];
    return out;
  }

  // ------------------------------------------------------------------------------------ work

  async claim(): Promise<StudyJob | undefined> {
    for (const { worker } of this.studyWorkers) {
      const token = crypto.randomUUID();
      const bull = await worker.getNextJob(token, { block: false });
      if (!bull) continue;
      const id = bull.data.id;
      const renew = setInterval(() => {
        bull.extendLock(token, this.lockMs).catch((e: Error) => log.warn('job lease not renewed', { event: 'queue.lock_lost', job: id, error: e.message }));
      }, Math.max(500, Math.floor(this.lockMs / 3)));
      this.claimed.set(id, { bull, token, renew });
      try {
        await this.update(id, 'running', {
          startedAt: Date.now(),
          attempts: Math.max(bull.attemptsStarted ?? 0, bull.attemptsMade + 1),
          worker: this.config.nodeName,
        });
        return await this.get(id);
      } catch (e) {
        // Stop renewing: the lease runs out and the stalled check hands the job on.
        this.release(id);
        throw e;
      }
    }
    return undefined;
  }

  private release(id: number): Claimed | undefined {
    const c = this.claimed.get(id);
    if (c) clearInterval(c.renew);
    this.claimed.delete(id);
    return c;
  }

  async complete(id: number, state: 'done' | 'not_processed', outcome: unknown): Promise<void> {
    const c = this.release(id);
    await this.update(id, state, { finishedAt: Date.now(), outcome: JSON.stringify(outcome ?? null), error: '' });
    if (c) await c.bull.moveToCompleted({ state }, c.token, false);
  }

  async fail(id: number, error: string): Promise<StudyJob> {
    const c = this.release(id);
    if (!c) throw new Error(`job ${id} is not held by this process`);
    await c.bull.moveToFailed(new Error(error), c.token, false);
    const attempts = c.bull.opts.attempts ?? 1;
    if (c.bull.attemptsMade >= attempts) {
      await this.update(id, 'dead', { finishedAt: Date.now(), error });
      await this.deadQueue?.add('dead', { id, studyUid: c.bull.data.studyUid, route: c.bull.data.route, error }, { jobId: `job-${id}` });
    } else {
      const delay = Math.round(this.config.queue.backoffSeconds * 1000 * 2 ** (c.bull.attemptsMade - 1));
      await this.update(id, 'ready', { readyAt: Date.now() + delay, error, handoff: 'retry' });
    }
    return (await this.get(id))!;
  }

  async retry(id: number): Promise<boolean> {
    const j = await this.get(id);
    if (!j || !['failed', 'dead', 'not_processed', 'done'].includes(j.state)) return false;
    const q = this.studyQueue(j.route);
    const bull = await q.getJob(`job-${id}`);
    const st = bull ? await bull.getState() : undefined;
    if (bull && (st === 'failed' || st === 'completed')) {
      await bull.retry(st, { resetAttemptsMade: true, resetAttemptsStarted: true });
    } else if (!bull) {
      await q.add(
        'study',
        { id, studyUid: j.studyUid, route: j.route },
        {
          jobId: `job-${id}`,
          priority: BULL_PRIORITY[j.priority],
          attempts: this.config.queue.maxAttempts,
          backoff: { type: 'exponential', delay: Math.round(this.config.queue.backoffSeconds * 1000) },
          removeOnComplete: { age: this.config.storage.retentionDays * 86400 },
          removeOnFail: false,
        },
      );
    } else {
      return false;
    }
    await this.deadQueue?.remove(`job-${id}`).catch(() => undefined);
    await this.update(id, 'ready', { readyAt: Date.now(), attempts: 0, handoff: 'operator-retry', error: '' });
    return true;
  }

  /**
   * Operator: process a study again on purpose (admin page "Reprocess"), as the embedded backend does: a
   * NEW job linked to the study's latest one (previousJobId, so the worker gets the whole study's
   * references), handoff 'operator-reprocess' (the node then records outcome.manualReprocess); earlier
   * jobs and their outcomes stay. undefined while a job of the study is still open.
   */
  async reprocess(studyUid: string, route: string, priority: Priority, instanceCount: number): Promise<StudyJob | undefined> {
    const routes = [...new Set([route, ...this.config.routes.map((r) => r.name)])];
    const id = (await this.script('reprocess', [this.P, studyUid, route, priority, instanceCount, ...routes])) as string;
    if (!id) return undefined;
    try {
      await this.studyQueue(route).add(
        'study',
        { id: Number(id), studyUid, route },
        {
          jobId: `job-${id}`,
          priority: BULL_PRIORITY[priority],
          attempts: this.config.queue.maxAttempts,
          backoff: { type: 'exponential', delay: Math.round(this.config.queue.backoffSeconds * 1000) },
          removeOnComplete: { age: this.config.storage.retentionDays * 86400 },
          removeOnFail: false,
        },
      );
    } catch (e) {
      // Not queued: record it as dead (not open, so the operator may retry it or reprocess again).
      await this.update(Number(id), 'dead', { finishedAt: Date.now(), error: `reprocess not queued: ${(e as Error).message}` }).catch(() => undefined);
      throw e;
    }
    return this.get(Number(id));
  }

  /** The instances of a job and of the jobs it follows (a late instance reprocesses the whole study). */
  async instances(job: StudyJob): Promise<StoredInstance[]> {
    const bySop = new Map<string, StoredInstance>();
    let id: number | null = job.id;
    for (let hops = 0; id !== null && hops < 100; hops++) {
      const refs = await this.redis.hvals(`${this.P}:q:refs:${id}`);
      for (const r of refs) {
        const i = JSON.parse(r) as StoredInstance;
        if (!bySop.has(i.sopInstanceUid)) bySop.set(i.sopInstanceUid, i);
      }
      const prev: string | null = await this.redis.hget(`${this.P}:q:job:${id}`, 'previousJobId');
      id = prev ? Number(prev) : null;
    }
    return [...bySop.values()].sort((a, b) => a.receivedAt.localeCompare(b.receivedAt));
  }

  // ------------------------------------------------------------------------------------ views

  private async update(id: number, state: JobState | '', fields: Record<string, string | number>): Promise<void> {
    const args: (string | number)[] = [this.P, String(id), state];
    for (const [k, v] of Object.entries(fields)) args.push(k, String(v));
    await this.script('update', args);
  }

  async get(id: number): Promise<StudyJob | undefined> {
    const h = await this.redis.hgetall(`${this.P}:q:job:${id}`);
    return h && h.id ? hashToJob(h) : undefined;
  }

  async list(opts: { states?: JobState[]; limit?: number } = {}): Promise<StudyJob[]> {
    const limit = opts.limit ?? 50;
    let ids: string[];
    if (opts.states?.length) {
      const all = await Promise.all(opts.states.map((s) => this.redis.zrevrange(`${this.P}:q:state:${s}`, 0, limit - 1)));
      ids = all
        .flat()
        .sort((a, b) => Number(b) - Number(a))
        .slice(0, limit);
    } else {
      ids = await this.redis.zrevrange(`${this.P}:q:all`, 0, limit - 1);
    }
    const jobs = await Promise.all(ids.map((i) => this.get(Number(i))));
    return jobs.filter((j): j is StudyJob => !!j);
  }

  async counts(): Promise<Record<JobState, number>> {
    const n = await Promise.all(STATES.map((s) => this.redis.zcard(`${this.P}:q:state:${s}`)));
    return Object.fromEntries(STATES.map((s, i) => [s, n[i]])) as Record<JobState, number>;
  }

  async hasOpenJob(studyUid: string): Promise<boolean> {
    for (const route of this.config.routes) {
      let id = await this.redis.get(`${this.P}:q:last:${route.name}:${studyUid}`);
      // the whole chain: an earlier job may still wait for a worker while a late one collects
      for (let hops = 0; id && hops < 100; hops++) {
        const [state, prev] = await this.redis.hmget(`${this.P}:q:job:${id}`, 'state', 'previousJobId');
        if (state && ['collecting', 'ready', 'running'].includes(state)) return true;
        id = prev;
      }
    }
    return false;
  }

  /** Workers seen in the last few lease periods (node name, routes, execution provider). */
  async workers(): Promise<Record<string, unknown>[]> {
    const keys = await this.redis.keys(`${this.P}:q:worker:*`);
    const vals = keys.length ? await this.redis.mget(...keys) : [];
    return vals.filter((v): v is string => !!v).map((v) => JSON.parse(v) as Record<string, unknown>);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (const id of [...this.claimed.keys()]) this.release(id);
    const graceful = async () => {
      await Promise.allSettled([this.stableWorker?.close(), ...this.studyWorkers.map((w) => w.worker.close(true))]);
      await Promise.allSettled([this.stableQueue?.close(), this.deadQueue?.close(), ...[...this.studyQueues.values()].map((q) => q.close())]);
      await this.redis.quit();
    };
    // With Redis unreachable, closing would wait for it forever: give up after 5 s (a job held by
    // this process is then handed on by BullMQ's stalled check when its lease runs out).
    await withTimeout(graceful(), 5000, 'close timed out').catch(() => undefined);
    this.redis.disconnect();
  }
}

function hashToJob(h: Record<string, string>): StudyJob {
  const n = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
  let outcome: unknown = null;
  try {
    outcome = h.outcome ? JSON.parse(h.outcome) : null;
  } catch {
    outcome = null;
  }
  return {
    id: Number(h.id),
    studyUid: h.studyUid,
    route: h.route,
    priority: h.priority as Priority,
    state: h.state as JobState,
    createdAt: Number(h.createdAt),
    lastInstanceAt: Number(h.lastInstanceAt),
    instanceCount: Number(h.instanceCount),
    readyAt: n(h.readyAt),
    startedAt: n(h.startedAt),
    finishedAt: n(h.finishedAt),
    previousJobId: n(h.previousJobId),
    attempts: Number(h.attempts ?? 0),
    handoff: h.handoff || null,
    outcome,
    error: h.error || null,
    worker: h.worker || undefined,
  };
}

