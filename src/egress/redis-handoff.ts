/**
 * The shared hand-off between worker processes and sender processes on the Redis queue
 * (`queue.backend: redis`), so that `sender` can run on its own machine(s), apart from the workers.
 *
 *   worker (roles: [worker])                Redis                      sender (roles: [sender])
 *   results written to shared storage ──▶ BullMQ queue `egress` ──▶ committed into its own outbox
 *   handOff() resolves once Redis has       (references only:          (SQLite, one transaction),
 *   the job: then the study is `done`        paths + destinations)     then acknowledged; then the
 *                                                                      usual batches, backoff, dead
 *
 * - Pixel data never goes through Redis: the job holds the result files' absolute paths on the
 *   shared filesystem and the destination names (a few hundred bytes).
 * - A sender takes one hand-off at a time, copies the result files into its own storage.dir
 *   (`results/handoff-<id>/`, fsynced), so what it must still send stays in its keeping whatever
 *   the worker's retention does later, reads each header (a file its machine cannot see fails here,
 *   with the path in the message, not later in a batch), and commits all of the job's rows and the
 *   job's id in one SQLite transaction. Its retention deletes such a folder once every row is sent. A hand-off that fails is retried with
 *   backoff (`egress.maxAttempts`, `egress.initialBackoffSeconds`: shared storage may lag), then kept
 *   in BullMQ's failed set (the dead-letter: on the admin page, retried by an operator). A
 *   destination this sender does not know fails at once, with its name.
 * - Delivery is at least once: a sender killed after its commit but before Redis heard of it sees
 *   the job again (stalled-job recovery); the same sender skips it by its id, another sender sends
 *   the instances again, which a PACS takes as the same SOP instances (C-STORE/STOW are idempotent).
 * - Every process with the sender role on the shared queue takes hand-offs, including `[worker,
 *   sender]` processes, which put their own results straight into their outbox (no Redis round trip).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Config } from '../config/schema';
import { log, ref } from '../util/log';
import { withTimeout } from '../util/timeout';
import type { EgressService } from './egress';
import { UnknownDestinationError } from './egress';
import type { HandoffMeta, ResultGroup, ResultHandoff } from './handoff';

interface HandoffData {
  groups: ResultGroup[];
  job: number;
  studyUid: string;
  /** nodeName of the worker that made the results. */
  from: string;
}

export interface HandoffCounts {
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
  completed: number;
}

const QUEUE = 'egress';
/** Hand-off ids remembered by a sender (to skip a redelivery) for this long. */
const SEEN_KEEP_MS = 7 * 24 * 3600 * 1000;

export class RedisHandoff implements ResultHandoff {
  readonly kind = 'shared' as const;
  private readonly connection: Record<string, unknown>;
  private queue?: Queue<HandoffData>;
  private worker?: Worker<HandoffData>;
  private pruneTimer?: NodeJS.Timeout;

  constructor(
    private readonly config: Config,
    private readonly opts: { addTimeoutMs?: number } = {},
  ) {
    const r = config.queue.redis;
    this.connection = { host: r.host, port: r.port, password: r.password, db: r.db, maxRetriesPerRequest: null };
  }

  private q(): Queue<HandoffData> {
    if (!this.queue) {
      this.queue = new Queue<HandoffData>(QUEUE, { connection: this.connection, prefix: this.config.queue.redis.prefix });
      this.queue.on('error', (e: Error) => log.warn('queue error', { event: 'queue.redis_error', queue: QUEUE, error: e.message }));
    }
    return this.queue;
  }

  /** Worker side: the results' references into the shared queue; resolves when Redis has them. */
  async handOff(groups: ResultGroup[], meta: HandoffMeta): Promise<void> {
    const kept = groups.filter((g) => g.files.length && g.destinations.length);
    if (!kept.length) return;
    const e = this.config.egress;
    // Our own unique id (never BullMQ's counter, which restarts with an emptied Redis while the
    // senders still remember the ids they committed). No ':' (BullMQ reserves it).
    const jobId = `results-${meta.job}-${crypto.randomUUID()}`;
    const add = this.q().add(
      'results',
      { groups: kept, job: meta.job, studyUid: meta.studyUid, from: this.config.nodeName },
      {
        jobId,
        attempts: e.maxAttempts,
        backoff: { type: 'exponential', delay: Math.round(e.initialBackoffSeconds * 1000) },
        removeOnComplete: { age: 7 * 24 * 3600, count: 10000 },
        removeOnFail: false,
      },
    );
    // Redis unreachable: fail the study job (retried later) instead of waiting forever. The add may
    // still land once Redis is back: at least once, as the module comment says.
    const limit = this.opts.addTimeoutMs ?? 30_000;
    await withTimeout(add, limit, `results not handed to the shared egress queue within ${limit / 1000} s (Redis unreachable?)`);
    log.info('egress: results handed to the shared queue', {
      event: 'egress.handed_off',
      handoff: jobId,
      job: meta.job,
      study: ref(meta.studyUid),
      files: kept.reduce((n, g) => n + g.files.length, 0),
      destinations: [...new Set(kept.flatMap((g) => g.destinations))],
    });
  }

  /** Sender side: take hand-offs from the shared queue into `egress`'s outbox. */
  startSending(egress: EgressService): void {
    const lockMs = Math.round(this.config.queue.lockSeconds * 1000);
    egress.outbox.pruneHandoffs(Date.now() - SEEN_KEEP_MS);
    this.pruneTimer = setInterval(() => egress.outbox.pruneHandoffs(Date.now() - SEEN_KEEP_MS), 3600_000);
    this.pruneTimer.unref?.();
    this.worker = new Worker<HandoffData>(QUEUE, (job) => this.commit(egress, job), {
      connection: this.connection,
      prefix: this.config.queue.redis.prefix,
      concurrency: 1,
      lockDuration: lockMs,
      stalledInterval: lockMs,
    });
    this.worker.on('error', (e: Error) => log.warn('egress hand-off worker error', { event: 'queue.redis_error', queue: QUEUE, error: e.message }));
    this.worker.on('failed', (job, err) => {
      if (!job) return;
      const final = err instanceof UnrecoverableError || err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
      const fields = { handoff: job.id, job: job.data.job, study: ref(job.data.studyUid), from: job.data.from, attempts: job.attemptsMade, error: err.message };
      if (final) log.error('egress: results could not be taken for sending; kept in the failed hand-offs until an operator retries them', { event: 'egress.handoff_dead', ...fields });
      else log.warn('egress: results could not be taken for sending; retried with backoff', { event: 'egress.handoff_retry', ...fields });
    });
  }

  private async commit(egress: EgressService, job: Job<HandoffData>): Promise<void> {
    const d = job.data;
    const id = String(job.id);
    let ids: number[] | null = null;
    const dir = path.join(this.config.storage.dir, 'results', `handoff-${id}`);
    try {
      if (!egress.outbox.hasHandoff(id)) {
        egress.checkDestinations(d.groups.flatMap((g) => g.destinations));
        const groups = d.groups.map((g) => ({ destinations: g.destinations, files: g.files.map((f) => ({ ...f, path: this.copyIn(f.path, dir) })) }));
        if (this.config.storage.fsync) fsyncDir(dir);
        ids = egress.enqueueGroups(groups, id);
      }
    } catch (e) {
      if (!egress.outbox.hasHandoff(id)) fs.rmSync(dir, { recursive: true, force: true });
      if (e instanceof UnknownDestinationError) {
        throw new UnrecoverableError(`${e.message}: not configured on sender ${this.config.nodeName} (add it to its destinations, then retry the hand-off)`);
      }
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT' || err.code === 'EACCES') {
        throw new Error(`result file not readable on sender ${this.config.nodeName}: ${err.path ?? err.message} (is the storage shared, at the same path, on this machine?)`);
      }
      throw e;
    }
    log.info('egress: hand-off taken', {
      event: 'egress.handoff_taken',
      handoff: job.id,
      job: d.job,
      study: ref(d.studyUid),
      from: d.from,
      rows: ids?.length ?? 0,
      duplicate: ids === null,
    });
  }

  /** A copy of a worker's result file in this sender's storage (same bytes, fsynced when storage.fsync). */
  private copyIn(src: string, dir: string): string {
    fs.mkdirSync(dir, { recursive: true });
    const dest = path.join(dir, path.basename(src));
    fs.copyFileSync(src, dest);
    if (this.config.storage.fsync) {
      const fd = fs.openSync(dest, 'r');
      try {
        fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    return dest;
  }

  async counts(): Promise<HandoffCounts> {
    const c = await this.q().getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
    return { waiting: c.waiting ?? 0, active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0, completed: c.completed ?? 0 };
  }

  /**
   * A worker-only process: why its result folders must stay for now (hand-offs not yet taken by a
   * sender, or Redis not answering), or undefined when they may go (housekeeping's retention).
   */
  async unsentReason(): Promise<string | undefined> {
    const c = await withTimeout(this.counts(), 5000, 'timeout').catch(() => undefined);
    if (!c) return 'the shared queue did not answer: cannot tell whether senders took the results';
    const n = c.waiting + c.delayed + c.active + c.failed;
    return n > 0 ? `${n} result hand-off(s) not yet taken by a sender` : undefined;
  }

  /** Operator: retry every failed hand-off (after fixing the sender's configuration or storage). */
  async retryFailed(): Promise<number> {
    const failed = await this.q().getFailed(0, 999);
    for (const j of failed) await j.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    return failed.length;
  }

  async close(): Promise<void> {
    clearInterval(this.pruneTimer);
    const graceful = async () => {
      await this.worker?.close();
      await this.queue?.close();
    };
    await withTimeout(graceful(), 5000, 'close timed out').catch(() => undefined);
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
