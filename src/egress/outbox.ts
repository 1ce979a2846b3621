/**
 * The durable outbox: one row per (result file, destination), in the node's SQLite database.
 *
 *   pending ──(batch starts)──▶ sending ──▶ sent
 *      ▲                          │
 *      │                          ├──▶ failed ──(next_attempt_at reached)──▶ sending …
 *      │                          └──▶ dead   (attempts ≥ maxAttempts, or file gone)
 *      └──────── retry(id) (operator) ◀────────┘
 *
 * A row in 'sending' when the process starts was interrupted mid-batch: recover() puts it back to
 * 'pending' (the PACS may have it already; C-STORE and STOW of the same SOP instance are idempotent).
 *
 * Per-destination backoff lives in `egress_destination`, so a failing PACS gets one attempt per
 * backoff window for the whole destination, and that window survives a restart too.
 *
 * All times are epoch milliseconds from the injected clock.
 */
import * as fs from 'fs';
import type { Db } from '../store/db';
import { readPart10, str } from '../dicom/dcmjs';

export type OutboxState = 'pending' | 'sending' | 'sent' | 'failed' | 'dead';

export interface OutboxFile {
  /** Absolute path of the Part 10 file to send. */
  path: string;
  /** Read from the file header when not given. */
  sopInstanceUid?: string;
  sopClassUid?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  transferSyntaxUid?: string;
}

export interface OutboxRow {
  id: number;
  destination: string;
  path: string;
  sopInstanceUid: string;
  sopClassUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  transferSyntaxUid: string;
  state: OutboxState;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  /** Last DIMSE status (e.g. 0xA700) or HTTP status of this row's last attempt. */
  lastStatus: number | null;
  createdAt: number;
  updatedAt: number;
  sentAt: number | null;
}

export interface DestinationState {
  name: string;
  /** Failed destination-level attempts in a row (0 after any success). */
  consecutiveFailures: number;
  /** No batch starts before this time. */
  nextAttemptAt: number;
  lastSuccessAt: number | null;
  lastFailureAt: number | null;
  lastError: string | null;
}

export interface DestinationStats {
  destination: string;
  /** Rows not yet sent and not dead (pending + sending + failed). */
  outboxSize: number;
  pending: number;
  sending: number;
  failed: number;
  dead: number;
  sent: number;
  lastSuccessAt: number | null;
  lastFailureAt: number | null;
  lastError: string | null;
  consecutiveFailures: number;
  /** When the destination will next be tried (its backoff window), or null if it is not waiting. */
  nextAttemptAt: number | null;
}

export interface ListFilter {
  destination?: string;
  state?: OutboxState | OutboxState[];
  studyInstanceUid?: string;
  limit?: number;
  offset?: number;
}

interface RowRecord {
  id: number;
  destination: string;
  path: string;
  sop_instance_uid: string;
  sop_class_uid: string;
  study_instance_uid: string;
  series_instance_uid: string;
  transfer_syntax_uid: string;
  state: OutboxState;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  last_status: number | null;
  created_at: number;
  updated_at: number;
  sent_at: number | null;
}

interface DestRecord {
  name: string;
  consecutive_failures: number;
  next_attempt_at: number;
  last_success_at: number | null;
  last_failure_at: number | null;
  last_error: string | null;
}

function toRow(r: RowRecord): OutboxRow {
  return {
    id: r.id,
    destination: r.destination,
    path: r.path,
    sopInstanceUid: r.sop_instance_uid,
    sopClassUid: r.sop_class_uid,
    studyInstanceUid: r.study_instance_uid,
    seriesInstanceUid: r.series_instance_uid,
    transferSyntaxUid: r.transfer_syntax_uid,
    state: r.state,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
    lastStatus: r.last_status,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    sentAt: r.sent_at,
  };
}

function toDest(r: DestRecord): DestinationState {
  return {
    name: r.name,
    consecutiveFailures: r.consecutive_failures,
    nextAttemptAt: r.next_attempt_at,
    lastSuccessAt: r.last_success_at,
    lastFailureAt: r.last_failure_at,
    lastError: r.last_error,
  };
}

/** Fill in missing UIDs from the file's header (stops before pixel data). */
export function describeFile(f: OutboxFile): Required<OutboxFile> {
  if (f.sopInstanceUid && f.sopClassUid && f.studyInstanceUid && f.seriesInstanceUid && f.transferSyntaxUid) {
    return f as Required<OutboxFile>;
  }
  const p = readPart10(fs.readFileSync(f.path), { untilPixelData: true });
  const sopInstanceUid = f.sopInstanceUid ?? str(p.dataset, 'SOPInstanceUID') ?? str(p.meta, 'MediaStorageSOPInstanceUID');
  const sopClassUid = f.sopClassUid ?? str(p.dataset, 'SOPClassUID') ?? str(p.meta, 'MediaStorageSOPClassUID');
  if (!sopInstanceUid || !sopClassUid) throw new Error(`${f.path}: no SOPInstanceUID/SOPClassUID`);
  return {
    path: f.path,
    sopInstanceUid,
    sopClassUid,
    studyInstanceUid: f.studyInstanceUid ?? str(p.dataset, 'StudyInstanceUID') ?? '',
    seriesInstanceUid: f.seriesInstanceUid ?? str(p.dataset, 'SeriesInstanceUID') ?? '',
    transferSyntaxUid: f.transferSyntaxUid ?? p.transferSyntaxUid,
  };
}

export class Outbox {
  constructor(
    private readonly db: Db,
    private readonly clock: () => number = Date.now,
  ) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS egress_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        destination TEXT NOT NULL,
        path TEXT NOT NULL,
        sop_instance_uid TEXT NOT NULL,
        sop_class_uid TEXT NOT NULL,
        study_instance_uid TEXT NOT NULL DEFAULT '',
        series_instance_uid TEXT NOT NULL DEFAULT '',
        transfer_syntax_uid TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL CHECK (state IN ('pending','sending','sent','failed','dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        last_status INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        sent_at INTEGER,
        UNIQUE (destination, sop_instance_uid)
      );
      CREATE INDEX IF NOT EXISTS egress_outbox_due ON egress_outbox (destination, state, next_attempt_at);
      CREATE INDEX IF NOT EXISTS egress_outbox_study ON egress_outbox (study_instance_uid);
      CREATE TABLE IF NOT EXISTS egress_destination (
        name TEXT PRIMARY KEY,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        last_success_at INTEGER,
        last_failure_at INTEGER,
        last_error TEXT
      );
      -- Shared-queue hand-offs (BullMQ job ids) already committed here: a job delivered again after a
      -- crash between this commit and its acknowledgement in Redis is not queued twice.
      CREATE TABLE IF NOT EXISTS egress_handoff (
        id TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL
      );
    `);
  }

  /**
   * Several groups of files (each for its own destinations) in one transaction. With `handoffId`
   * (a shared-queue job), at most once per id: returns null when that id was committed before.
   */
  enqueueGroups(groups: { files: OutboxFile[]; destinations: string[] }[], handoffId?: string): number[] | null {
    // Headers are read (and files found) before the transaction, as in enqueue().
    const described = groups.map((g) => ({ files: g.files.map(describeFile), destinations: g.destinations }));
    const seen = this.db.prepare(`INSERT OR IGNORE INTO egress_handoff (id, received_at) VALUES (?, ?)`);
    return this.db.transaction(() => {
      if (handoffId !== undefined && seen.run(handoffId, this.clock()).changes === 0) return null;
      return described.flatMap((g) => this.enqueue(g.files, g.destinations));
    })();
  }

  /** Whether this shared-queue hand-off id was committed here already. */
  hasHandoff(id: string): boolean {
    return this.db.prepare('SELECT 1 FROM egress_handoff WHERE id = ?').get(id) !== undefined;
  }

  /** Forget hand-off ids older than `beforeMs` (epoch ms); a redelivery is only possible within minutes. */
  pruneHandoffs(beforeMs: number): number {
    return this.db.prepare(`DELETE FROM egress_handoff WHERE received_at < ?`).run(beforeMs).changes;
  }

  /**
   * Queue every file for every destination (one row each). Re-enqueueing the same SOP instance for
   * the same destination resets that row to pending (a deliberate re-send), unless it is being sent.
   * Returns the ids of the rows queued.
   */
  enqueue(files: OutboxFile[], destinationNames: string[]): number[] {
    const now = this.clock();
    const described = files.map(describeFile);
    const upsert = this.db.prepare(`
      INSERT INTO egress_outbox (destination, path, sop_instance_uid, sop_class_uid, study_instance_uid,
        series_instance_uid, transfer_syntax_uid, state, attempts, next_attempt_at, created_at, updated_at)
      VALUES (@destination, @path, @sopInstanceUid, @sopClassUid, @studyInstanceUid, @seriesInstanceUid,
        @transferSyntaxUid, 'pending', 0, @now, @now, @now)
      ON CONFLICT (destination, sop_instance_uid) DO UPDATE SET
        path = excluded.path, sop_class_uid = excluded.sop_class_uid,
        study_instance_uid = excluded.study_instance_uid, series_instance_uid = excluded.series_instance_uid,
        transfer_syntax_uid = excluded.transfer_syntax_uid,
        state = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
        last_error = NULL, last_status = NULL, sent_at = NULL, updated_at = excluded.updated_at
      WHERE egress_outbox.state <> 'sending'
      RETURNING id`);
    const ensureDest = this.db.prepare(`INSERT OR IGNORE INTO egress_destination (name) VALUES (?)`);
    const ids: number[] = [];
    this.db.transaction(() => {
      for (const d of destinationNames) {
        ensureDest.run(d);
        for (const f of described) {
          const r = upsert.get({ destination: d, now, ...f }) as { id: number } | undefined;
          if (r) ids.push(r.id);
        }
      }
    })();
    return ids;
  }

  /** At start: rows left in 'sending' by a crash or stop go back to 'pending'. Returns how many. */
  recover(): number {
    const now = this.clock();
    return this.db
      .prepare(`UPDATE egress_outbox SET state = 'pending', next_attempt_at = ?, updated_at = ? WHERE state = 'sending'`)
      .run(now, now).changes;
  }

  /** Rows due now: pending or failed, their own time reached, and their destination not in backoff. */
  due(now: number = this.clock(), opts: { destination?: string; limit?: number } = {}): OutboxRow[] {
    const rows = this.db
      .prepare(
        `SELECT o.* FROM egress_outbox o LEFT JOIN egress_destination d ON d.name = o.destination
         WHERE o.state IN ('pending','failed') AND o.next_attempt_at <= @now
           AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= @now)
           AND (@destination IS NULL OR o.destination = @destination)
         ORDER BY o.destination, o.next_attempt_at, o.id
         LIMIT @limit`,
      )
      .all({ now, destination: opts.destination ?? null, limit: opts.limit ?? -1 }) as RowRecord[];
    return rows.map(toRow);
  }

  /** Claim rows for a batch: state → sending, attempts + 1. Rows no longer claimable are skipped. */
  markSending(ids: number[]): OutboxRow[] {
    const now = this.clock();
    const claim = this.db.prepare(
      `UPDATE egress_outbox SET state = 'sending', attempts = attempts + 1, updated_at = ?
       WHERE id = ? AND state IN ('pending','failed') RETURNING *`,
    );
    const out: OutboxRow[] = [];
    this.db.transaction(() => {
      for (const id of ids) {
        const r = claim.get(now, id) as RowRecord | undefined;
        if (r) out.push(toRow(r));
      }
    })();
    return out;
  }

  markSent(id: number, status: number | null = null, note: string | null = null): void {
    const now = this.clock();
    this.db
      .prepare(
        `UPDATE egress_outbox SET state = 'sent', sent_at = ?, updated_at = ?, last_status = ?, last_error = ? WHERE id = ?`,
      )
      .run(now, now, status, note, id);
  }

  /**
   * Record a failed attempt. The row becomes 'dead' when `dead` is set or its attempts reached
   * maxAttempts; otherwise 'failed' until `nextAttemptAt`.
   */
  markFailed(
    id: number,
    error: string,
    opts: { status?: number | null; nextAttemptAt: number; maxAttempts: number; dead?: boolean },
  ): OutboxState {
    const now = this.clock();
    const row = this.get(id);
    if (!row) return 'dead';
    const state: OutboxState = opts.dead || row.attempts >= opts.maxAttempts ? 'dead' : 'failed';
    this.db
      .prepare(
        `UPDATE egress_outbox SET state = ?, last_error = ?, last_status = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?`,
      )
      .run(state, error, opts.status ?? null, opts.nextAttemptAt, now, id);
    return state;
  }

  /**
   * Operator action: send this row again (dead or failed → pending, attempts reset) and lift its
   * destination's backoff so it is tried at the next tick. Returns false for an unknown id or a row
   * that is being sent or already sent.
   */
  retry(id: number): boolean {
    const now = this.clock();
    let ok = false;
    this.db.transaction(() => {
      const r = this.db
        .prepare(
          `UPDATE egress_outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?
           WHERE id = ? AND state IN ('dead','failed','pending') RETURNING destination`,
        )
        .get(now, now, id) as { destination: string } | undefined;
      if (r) {
        ok = true;
        this.db.prepare(`UPDATE egress_destination SET next_attempt_at = ? WHERE name = ?`).run(now, r.destination);
      }
    })();
    return ok;
  }

  /** Operator action: retry every dead row of a destination. Returns how many. */
  retryDead(destination: string): number {
    const ids = (
      this.db.prepare(`SELECT id FROM egress_outbox WHERE destination = ? AND state = 'dead'`).all(destination) as {
        id: number;
      }[]
    ).map((r) => r.id);
    ids.forEach((id) => this.retry(id));
    return ids.length;
  }

  get(id: number): OutboxRow | undefined {
    const r = this.db.prepare(`SELECT * FROM egress_outbox WHERE id = ?`).get(id) as RowRecord | undefined;
    return r ? toRow(r) : undefined;
  }

  list(filter: ListFilter = {}): OutboxRow[] {
    const states = filter.state === undefined ? null : Array.isArray(filter.state) ? filter.state : [filter.state];
    const rows = this.db
      .prepare(
        `SELECT * FROM egress_outbox
         WHERE (@destination IS NULL OR destination = @destination)
           AND (@study IS NULL OR study_instance_uid = @study)
           AND (@states IS NULL OR state IN (SELECT value FROM json_each(@states)))
         ORDER BY id DESC LIMIT @limit OFFSET @offset`,
      )
      .all({
        destination: filter.destination ?? null,
        study: filter.studyInstanceUid ?? null,
        states: states ? JSON.stringify(states) : null,
        limit: filter.limit ?? 500,
        offset: filter.offset ?? 0,
      }) as RowRecord[];
    return rows.map(toRow);
  }

  // ---- per-destination backoff state ----

  destination(name: string): DestinationState {
    this.db.prepare(`INSERT OR IGNORE INTO egress_destination (name) VALUES (?)`).run(name);
    return toDest(this.db.prepare(`SELECT * FROM egress_destination WHERE name = ?`).get(name) as DestRecord);
  }

  /** A batch reached the destination (at least one instance accepted): close the circuit. */
  destinationSucceeded(name: string): void {
    const now = this.clock();
    this.destination(name);
    this.db
      .prepare(
        `UPDATE egress_destination SET consecutive_failures = 0, next_attempt_at = 0, last_success_at = ? WHERE name = ?`,
      )
      .run(now, name);
  }

  /** A batch failed as a whole: the destination waits until `nextAttemptAt`. Returns the new failure count. */
  destinationFailed(name: string, error: string, nextAttemptAt: number): number {
    const now = this.clock();
    this.destination(name);
    const r = this.db
      .prepare(
        `UPDATE egress_destination SET consecutive_failures = consecutive_failures + 1, next_attempt_at = ?,
           last_failure_at = ?, last_error = ? WHERE name = ? RETURNING consecutive_failures`,
      )
      .get(nextAttemptAt, now, error, name) as { consecutive_failures: number };
    return r.consecutive_failures;
  }

  /** Per destination: outbox size, last success, failures, dead count (destinations with rows or state). */
  stats(names: string[] = []): DestinationStats[] {
    const now = this.clock();
    const counts = this.db
      .prepare(`SELECT destination, state, COUNT(*) AS n FROM egress_outbox GROUP BY destination, state`)
      .all() as { destination: string; state: OutboxState; n: number }[];
    const dests = this.db.prepare(`SELECT * FROM egress_destination`).all() as DestRecord[];
    const all = new Set<string>([...names, ...counts.map((c) => c.destination), ...dests.map((d) => d.name)]);
    return [...all].sort().map((name) => {
      const c = (s: OutboxState): number => counts.find((x) => x.destination === name && x.state === s)?.n ?? 0;
      const d = dests.find((x) => x.name === name);
      return {
        destination: name,
        outboxSize: c('pending') + c('sending') + c('failed'),
        pending: c('pending'),
        sending: c('sending'),
        failed: c('failed'),
        dead: c('dead'),
        sent: c('sent'),
        lastSuccessAt: d?.last_success_at ?? null,
        lastFailureAt: d?.last_failure_at ?? null,
        lastError: d?.last_error ?? null,
        consecutiveFailures: d?.consecutive_failures ?? 0,
        nextAttemptAt: d && d.next_attempt_at > now ? d.next_attempt_at : null,
      };
    });
  }
}
