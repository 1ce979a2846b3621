/**
 * Study jobs and their stability, durable in SQLite (the embedded, single-process backend).
 *
 * Life of a job: an instance arrives → the study's `collecting` job is created or extended →
 * when no instance arrived for the route's quiet period (or the route's required series are all
 * present and a short settle time passed) it becomes `ready` → a worker claims it (`running`) →
 * `done` / `not_processed` (nothing usable, with the reason) / `failed` (retried up to
 * maxAttempts, then `dead`). An instance arriving after hand-off opens a NEW job linked to the
 * previous one (previous_job_id), so late data is never lost and never silently merged into a
 * result already sent. Everything lives in the database, so a restart resumes where it stopped:
 * a `running` job found at start-up goes back to `ready`.
 *
 * The `JobQueue` interface is what the node uses; it is Promise-based so that a networked backend
 * (BullMQ/Redis, `src/jobs/redis-queue.ts`) implements it too. This embedded backend answers from
 * SQLite synchronously inside each async method, so its ordering is exactly that of a plain call.
 */
import type Database from 'better-sqlite3';
import { Db } from '../store/db';
import { ArrivalHint } from '../store/instances';
import { StoredInstance } from '../types';
import type { Route } from '../config/schema';
import type { Roles } from '../config/roles';

export type JobState = 'collecting' | 'ready' | 'running' | 'done' | 'not_processed' | 'failed' | 'dead';
export type Priority = 'urgent' | 'normal' | 'research';

export interface StudyJob {
  id: number;
  studyUid: string;
  route: string;
  priority: Priority;
  state: JobState;
  createdAt: number;
  lastInstanceAt: number;
  instanceCount: number;
  readyAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  previousJobId: number | null;
  attempts: number;
  /** Why it was handed on: 'quiet-period' | 'required-series' | 'retry'. */
  handoff: string | null;
  /** JSON written by the pipeline (route taken, outputs, timings). */
  outcome: unknown;
  error: string | null;
  /** Shared backend: the node name of the worker that ran (or runs) it. */
  worker?: string;
}

export interface StabilityRule {
  route: string;
  quietPeriodMs: number;
  requiredSeries: ArrivalHint[];
  priority: Priority;
}

export interface JobQueue {
  /** Which backend this is ('embedded' SQLite, or 'redis' BullMQ), for logs and the admin page. */
  readonly backend: 'embedded' | 'redis';
  /**
   * An instance of `studyUid` was stored. `instance` is its reference (path on disk, UIDs), never
   * pixel data: a shared backend keeps it with the job so a worker on another machine finds the file.
   */
  noteArrival(studyUid: string, route: string, hint: ArrivalHint, priority: Priority, now?: number, instance?: StoredInstance): Promise<StudyJob>;
  /** Move collecting jobs whose study is stable to ready; returns those moved (by this process). */
  promoteStable(rules: Map<string, StabilityRule>, now?: number): Promise<StudyJob[]>;
  /** Take the next ready job (urgent first, then oldest). */
  claim(now?: number): Promise<StudyJob | undefined>;
  complete(id: number, state: 'done' | 'not_processed', outcome: unknown, now?: number): Promise<void>;
  fail(id: number, error: string, maxAttempts: number, now?: number): Promise<StudyJob>;
  retry(id: number, now?: number): Promise<boolean>;
  /**
   * Operator: process a study again on purpose (e.g. after a re-send, a model update). A NEW job,
   * ready at once, linked to the study's latest job (previous_job_id), handoff 'operator-reprocess';
   * the earlier jobs and their outcomes stay. undefined when the study has a job still open.
   */
  reprocess?(studyUid: string, route: string, priority: Priority, instanceCount: number, now?: number): Promise<StudyJob | undefined>;
  get(id: number): Promise<StudyJob | undefined>;
  list(opts?: { states?: JobState[]; limit?: number }): Promise<StudyJob[]>;
  counts(): Promise<Record<JobState, number>>;
  /**
   * The instances a claimed job covers, as references. Backends shared between machines answer from
   * the references noted at arrival; undefined here means "ask the local instance store".
   */
  instances?(job: StudyJob): Promise<StoredInstance[]>;
  /**
   * Called once by the node at start (after the store recovered): a shared backend connects, starts
   * its stability timers (receiver/worker roles) and replays arrivals not yet recorded.
   */
  start?(ctx: QueueStartContext): Promise<void>;
  /** Shared backends: whether a job of this study is still collecting, waiting, running or retrying. */
  hasOpenJob?(studyUid: string): Promise<boolean>;
  /** Release connections (the node calls it at stop). */
  close?(): Promise<void>;
}

/** Off-peak window for research routes, local time "HH:MM"; start > end wraps past midnight. */
export interface OffPeakWindow {
  start: string;
  end: string;
}

/** Milliseconds from `now` until the off-peak window opens (0 inside it). */
export function offPeakDelayMs(window: OffPeakWindow | undefined, now = Date.now()): number {
  if (!window) return 0;
  const mins = (hhmm: string) => {
    const [h, m] = hhmm.split(':').map(Number);
    return h * 60 + m;
  };
  const d = new Date(now);
  const cur = d.getHours() * 60 + d.getMinutes() + d.getSeconds() / 60 + d.getMilliseconds() / 60000;
  const start = mins(window.start);
  const end = mins(window.end);
  const inside = start <= end ? cur >= start && cur < end : cur >= start || cur < end;
  if (inside) return 0;
  const wait = (start - cur + 1440) % 1440;
  return Math.round(wait * 60_000);
}

export interface QueueStartContext {
  rules: Map<string, StabilityRule>;
  roles: Roles;
  /** Worker side: why this process cannot run a route's models (undefined = it can). */
  cannotRun?: (route: Route) => string | undefined;
  /** Worker side: what it runs on, published with its heartbeat (e.g. "cpu", "webgpu"). */
  executionProvider?: string;
}

/** After the last required series arrived, wait this long for stragglers of the same burst. */
export const REQUIRED_SERIES_SETTLE_MS = 1000;

const PRIORITY_ORDER = "CASE priority WHEN 'urgent' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END";

export class EmbeddedQueue implements JobQueue {
  readonly backend = 'embedded' as const;

  /** `offPeak`: when set, research-priority jobs become ready only inside this window. */
  constructor(
    private readonly db: Db,
    private readonly offPeak?: OffPeakWindow,
  ) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        study_uid TEXT NOT NULL,
        route TEXT NOT NULL,
        priority TEXT NOT NULL DEFAULT 'urgent',
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_instance_at INTEGER NOT NULL,
        instance_count INTEGER NOT NULL DEFAULT 0,
        hints TEXT NOT NULL DEFAULT '',
        ready_at INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        previous_job_id INTEGER REFERENCES jobs(id),
        attempts INTEGER NOT NULL DEFAULT 0,
        handoff TEXT,
        outcome TEXT,
        error TEXT
      );
      CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
      CREATE INDEX IF NOT EXISTS jobs_study ON jobs(study_uid);
    `);
    // Restart: a job that was running when the process died is handed on again.
    db.prepare("UPDATE jobs SET state = 'ready', handoff = 'restart' WHERE state = 'running'").run();
  }

  private statements = new Map<string, Database.Statement<unknown[]>>();
  /** A cached prepared statement (preparing costs ~0.1 ms; noteArrival runs for every instance). */
  private st(sql: string): Database.Statement<unknown[]> {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  async noteArrival(studyUid: string, route: string, hint: ArrivalHint, priority: Priority, now = Date.now()): Promise<StudyJob> {
    const tx = this.db.transaction(() => {
      const open = this.st("SELECT id, hints FROM jobs WHERE study_uid = ? AND route = ? AND state = 'collecting' ORDER BY id DESC LIMIT 1")
        .get(studyUid, route) as { id: number; hints: string } | undefined;
      if (open) {
        const hints = new Set(open.hints.split(',').filter(Boolean));
        hints.add(hint);
        this.st('UPDATE jobs SET last_instance_at = ?, instance_count = instance_count + 1, hints = ? WHERE id = ?')
          .run(now, [...hints].join(','), open.id);
        return open.id;
      }
      const prev = this.st('SELECT id FROM jobs WHERE study_uid = ? AND route = ? ORDER BY id DESC LIMIT 1')
        .get(studyUid, route) as { id: number } | undefined;
      const r = this.st(
          `INSERT INTO jobs (study_uid, route, priority, state, created_at, last_instance_at, instance_count, hints, previous_job_id)
           VALUES (?, ?, ?, 'collecting', ?, ?, 1, ?, ?)`,
        )
        .run(studyUid, route, priority, now, now, hint, prev?.id ?? null);
      return Number(r.lastInsertRowid);
    });
    return this.getSync(tx())!;
  }

  async promoteStable(rules: Map<string, StabilityRule>, now = Date.now()): Promise<StudyJob[]> {
    const collecting = this.db.prepare("SELECT * FROM jobs WHERE state = 'collecting'").all() as Record<string, unknown>[];
    const moved: StudyJob[] = [];
    for (const row of collecting) {
      const rule = rules.get(String(row.route));
      const quiet = rule?.quietPeriodMs ?? 5000;
      const last = Number(row.last_instance_at);
      let handoff: string | undefined;
      if (now - last >= quiet) handoff = 'quiet-period';
      else if (rule && rule.requiredSeries.length > 0) {
        const hints = new Set(String(row.hints).split(','));
        if (rule.requiredSeries.every((h) => hints.has(h)) && now - last >= REQUIRED_SERIES_SETTLE_MS) handoff = 'required-series';
      }
      if (!handoff) continue;
      const readyAt = row.priority === 'research' ? now + offPeakDelayMs(this.offPeak, now) : now;
      const changed = this.db
        .prepare("UPDATE jobs SET state = 'ready', ready_at = ?, handoff = ? WHERE id = ? AND state = 'collecting'")
        .run(readyAt, handoff, row.id).changes;
      if (changed) moved.push(this.getSync(Number(row.id))!);
    }
    return moved;
  }

  async claim(now = Date.now()): Promise<StudyJob | undefined> {
    const tx = this.db.transaction(() => {
      const row = this.db
        .prepare(`SELECT id FROM jobs WHERE state = 'ready' AND (ready_at IS NULL OR ready_at <= ?) ORDER BY ${PRIORITY_ORDER}, ready_at, id LIMIT 1`)
        .get(now) as { id: number } | undefined;
      if (!row) return undefined;
      this.db.prepare("UPDATE jobs SET state = 'running', started_at = ?, attempts = attempts + 1 WHERE id = ?").run(now, row.id);
      return row.id;
    });
    const id = tx();
    return id === undefined ? undefined : this.getSync(id);
  }

  async complete(id: number, state: 'done' | 'not_processed', outcome: unknown, now = Date.now()): Promise<void> {
    this.db
      .prepare('UPDATE jobs SET state = ?, finished_at = ?, outcome = ?, error = NULL WHERE id = ?')
      .run(state, now, JSON.stringify(outcome ?? null), id);
  }

  async fail(id: number, error: string, maxAttempts: number, now = Date.now()): Promise<StudyJob> {
    const job = this.getSync(id);
    if (!job) throw new Error(`no job ${id}`);
    if (job.attempts >= maxAttempts) {
      this.db.prepare("UPDATE jobs SET state = 'dead', finished_at = ?, error = ? WHERE id = ?").run(now, error, id);
    } else {
      // Back off before the next attempt: 10 s, 40 s, 90 s …
      const delay = 10_000 * job.attempts * job.attempts;
      this.db.prepare("UPDATE jobs SET state = 'ready', ready_at = ?, error = ?, handoff = 'retry' WHERE id = ?").run(now + delay, error, id);
    }
    return this.getSync(id)!;
  }

  async retry(id: number, now = Date.now()): Promise<boolean> {
    return (
      this.db
        .prepare("UPDATE jobs SET state = 'ready', ready_at = ?, attempts = 0, handoff = 'operator-retry' WHERE id = ? AND state IN ('failed','dead','not_processed','done')")
        .run(now, id).changes > 0
    );
  }

  async reprocess(studyUid: string, route: string, priority: Priority, instanceCount: number, now = Date.now()): Promise<StudyJob | undefined> {
    const id = this.db.transaction(() => {
      const open = this.st("SELECT id FROM jobs WHERE study_uid = ? AND state IN ('collecting','ready','running','failed') LIMIT 1").get(studyUid);
      if (open) return undefined;
      const prev = this.st('SELECT id FROM jobs WHERE study_uid = ? ORDER BY id DESC LIMIT 1').get(studyUid) as { id: number } | undefined;
      const r = this.st(
        `INSERT INTO jobs (study_uid, route, priority, state, created_at, last_instance_at, instance_count, hints, ready_at, previous_job_id, handoff)
         VALUES (?, ?, ?, 'ready', ?, ?, ?, '', ?, ?, 'operator-reprocess')`,
      ).run(studyUid, route, priority, now, now, instanceCount, now, prev?.id ?? null);
      return Number(r.lastInsertRowid);
    })();
    return id === undefined ? undefined : this.getSync(id);
  }

  async get(id: number): Promise<StudyJob | undefined> {
    return this.getSync(id);
  }

  private getSync(id: number): StudyJob | undefined {
    const r = this.st('SELECT * FROM jobs WHERE id = ?').get(id) as Record<string, unknown> | undefined;
    return r ? rowToJob(r) : undefined;
  }

  async list(opts: { states?: JobState[]; limit?: number } = {}): Promise<StudyJob[]> {
    const limit = opts.limit ?? 50;
    if (opts.states?.length) {
      const q = `SELECT * FROM jobs WHERE state IN (${opts.states.map(() => '?').join(',')}) ORDER BY id DESC LIMIT ?`;
      return (this.db.prepare(q).all(...opts.states, limit) as Record<string, unknown>[]).map(rowToJob);
    }
    return (this.db.prepare('SELECT * FROM jobs ORDER BY id DESC LIMIT ?').all(limit) as Record<string, unknown>[]).map(rowToJob);
  }

  async counts(): Promise<Record<JobState, number>> {
    const out: Record<JobState, number> = { collecting: 0, ready: 0, running: 0, done: 0, not_processed: 0, failed: 0, dead: 0 };
    for (const r of this.db.prepare('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state').all() as { state: JobState; n: number }[]) {
      out[r.state] = r.n;
    }
    return out;
  }
}

function rowToJob(r: Record<string, unknown>): StudyJob {
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  let outcome: unknown = null;
  try {
    outcome = r.outcome ? JSON.parse(String(r.outcome)) : null;
  } catch {
    outcome = null;
  }
  return {
    id: Number(r.id),
    studyUid: String(r.study_uid),
    route: String(r.route),
    priority: r.priority as Priority,
    state: r.state as JobState,
    createdAt: Number(r.created_at),
    lastInstanceAt: Number(r.last_instance_at),
    instanceCount: Number(r.instance_count),
    readyAt: n(r.ready_at),
    startedAt: n(r.started_at),
    finishedAt: n(r.finished_at),
    previousJobId: n(r.previous_job_id),
    attempts: Number(r.attempts),
    handoff: (r.handoff as string | null) ?? null,
    outcome,
    error: (r.error as string | null) ?? null,
  };
}
