/**
 * The egress worker: drains the durable outbox to each configured destination.
 *
 * - Every tick, for each destination with due rows and no batch in flight, it claims up to
 *   `batchSize` rows and sends them as ONE batch (one association / one STOW request per study).
 * - At most one batch in flight per destination; destinations are served in parallel.
 * - No retry storms: when a batch fails as a whole (nothing accepted: connection refused,
 *   association rejected, every instance refused), the DESTINATION waits
 *   min(maxBackoff, initialBackoff · 2^(n−1)) seconds (n = consecutive failures), and all its rows
 *   wait with it. So a PACS that is down gets one attempt per backoff window, not one per file.
 * - A row that fails alone (its destination accepted others) waits with its own backoff.
 * - A row whose attempts reach maxAttempts becomes 'dead': visible in stats()/list(), resent only by
 *   an operator's retry(id) / retryDead(destination).
 * - When a batch succeeded and more rows are due, the next batch starts at once (drain).
 *
 * The clock is injectable (tests advance it instead of sleeping).
 */
import type { Destination } from '../config/schema';
import type { Db } from '../store/db';
import { log, ref } from '../util/log';
import { DimseSender } from './dimse-sender';
import { DestinationStats, Outbox, OutboxFile, OutboxRow } from './outbox';
import type { Sender } from './sender';
import { StowSender } from './stow-sender';

export interface EgressSettings {
  maxAttempts: number;
  initialBackoffSeconds: number;
  maxBackoffSeconds: number;
}

export interface EgressOptions {
  db: Db;
  destinations: Destination[];
  settings: EgressSettings;
  /** AE title for DIMSE destinations that set no callingAeTitle (config dimse.aeTitle). */
  callingAeTitle: string;
  /** Epoch ms; defaults to Date.now. */
  clock?: () => number;
  /** How often start() looks for due rows (ms, real time). Default 1000. */
  tickMs?: number;
  /** Instances per batch (per association). Default 50. */
  batchSize?: number;
  /** ± fraction of random jitter on backoff delays (default 0.1; 0 for deterministic tests). */
  jitter?: number;
  /** Transport per destination; defaults to DimseSender / StowSender. */
  senderFactory?: (dest: Destination) => Sender;
  /** Per-batch timeout for senders (ms). Default 300000. */
  batchTimeoutMs?: number;
}

/** A destination name this process does not have in its configuration. */
export class UnknownDestinationError extends Error {
  constructor(readonly names: string[]) {
    super(`unknown egress destination(s): ${names.join(', ')}`);
  }
}

export interface BatchSummary {
  destination: string;
  attempted: number;
  sent: number;
  failed: number;
  dead: number;
  error?: string;
}

export class EgressService {
  readonly outbox: Outbox;
  private readonly clock: () => number;
  private readonly senders = new Map<string, Sender>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly destinations: Map<string, Destination>;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  /** Summaries of the last batches (newest last, at most 100), for the admin page and tests. */
  readonly history: BatchSummary[] = [];

  constructor(private readonly opts: EgressOptions) {
    this.clock = opts.clock ?? Date.now;
    this.outbox = new Outbox(opts.db, this.clock);
    this.destinations = new Map(opts.destinations.map((d) => [d.name, d]));
    for (const d of opts.destinations) {
      this.senders.set(d.name, opts.senderFactory ? opts.senderFactory(d) : defaultSender(d, opts));
    }
  }

  /** Queue result files for destinations (names must be configured). */
  enqueue(files: OutboxFile[], destinationNames: string[]): number[] {
    return this.enqueueGroups([{ files, destinations: destinationNames }]) ?? [];
  }

  /**
   * Queue several groups of files (each for its own destinations) in one transaction. With
   * `handoffId` (a job of the shared queue) at most once per id: null when it was committed before.
   */
  enqueueGroups(groups: { files: OutboxFile[]; destinations: string[] }[], handoffId?: string): number[] | null {
    this.checkDestinations(groups.flatMap((g) => g.destinations));
    const ids = this.outbox.enqueueGroups(groups, handoffId);
    if (ids === null) return null;
    // Send now rather than at the next tick (up to tickMs later). tick() skips a destination with a
    // batch in flight and rows still in backoff, so this adds no attempts to a failing PACS.
    if (!this.stopped) setImmediate(() => {
      if (!this.stopped) this.tick();
    });
    for (const g of groups) {
      log.info('egress: queued', {
        event: 'egress.enqueued',
        files: g.files.length,
        destinations: g.destinations,
        studies: [...new Set(g.files.map((f) => ref(f.studyInstanceUid)))],
        ...(handoffId ? { handoff: handoffId } : {}),
      });
    }
    return ids;
  }

  /** Throws UnknownDestinationError naming those not configured in this process. */
  checkDestinations(names: string[]): void {
    const unknown = [...new Set(names)].filter((n) => !this.destinations.has(n));
    if (unknown.length > 0) throw new UnknownDestinationError(unknown);
  }

  /** Put interrupted rows back to pending and start ticking. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const recovered = this.outbox.recover();
    if (recovered > 0) log.warn('egress: rows interrupted mid-send put back to pending', { event: 'egress.recovered', rows: recovered });
    this.timer = setInterval(() => this.tick(), this.opts.tickMs ?? 1000);
    this.timer.unref?.();
    this.tick();
  }

  /** Stop ticking and wait for batches in flight to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.idle();
  }

  /** Send what is due now and wait until every destination's batches have finished. */
  async sendNow(): Promise<void> {
    this.tick();
    await this.idle();
  }

  stats(): DestinationStats[] {
    return this.outbox.stats([...this.destinations.keys()]);
  }

  /** Operator: send a dead/failed row again. */
  retry(id: number): boolean {
    const ok = this.outbox.retry(id);
    if (ok) log.info('egress: operator retry', { event: 'egress.retry', id });
    return ok;
  }

  retryDead(destination: string): number {
    const n = this.outbox.retryDead(destination);
    log.info('egress: operator retry of dead rows', { event: 'egress.retry_dead', destination, rows: n });
    return n;
  }

  /** Backoff delay in ms for the n-th consecutive failure (n ≥ 1). */
  backoffMs(n: number): number {
    const s = this.opts.settings;
    const base = Math.min(s.maxBackoffSeconds, s.initialBackoffSeconds * Math.pow(2, Math.max(0, n - 1))) * 1000;
    const j = this.opts.jitter ?? 0.1;
    return Math.round(base * (1 + (j > 0 ? (Math.random() * 2 - 1) * j : 0)));
  }

  private async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight.values()]);
  }

  /** Launch a drain for every destination with due rows and none in flight (synchronous). */
  private tick(): void {
    for (const name of this.destinations.keys()) {
      if (this.inFlight.has(name)) continue;
      if (this.outbox.due(this.clock(), { destination: name, limit: 1 }).length === 0) continue;
      const p = this.drain(name)
        .catch((e: Error) => {
          log.error('egress: batch crashed', { event: 'egress.crash', destination: name, error: e.message });
        })
        .finally(() => this.inFlight.delete(name));
      this.inFlight.set(name, p);
    }
  }

  /** Send batches to one destination while they succeed and rows are due. */
  private async drain(name: string): Promise<void> {
    for (;;) {
      const due = this.outbox.due(this.clock(), { destination: name, limit: this.opts.batchSize ?? 50 });
      if (due.length === 0) return;
      const summary = await this.sendBatch(name, due);
      if (summary.sent === 0 || this.stopped) return;
    }
  }

  private async sendBatch(name: string, due: OutboxRow[]): Promise<BatchSummary> {
    const sender = this.senders.get(name);
    if (!sender) throw new Error(`no sender for destination ${name}`);
    const rows = this.outbox.markSending(due.map((r) => r.id));
    const byId = new Map(rows.map((r) => [r.id, r]));
    const result = await sender.send(
      rows.map((r) => ({
        id: r.id,
        path: r.path,
        sopInstanceUid: r.sopInstanceUid,
        sopClassUid: r.sopClassUid,
        studyInstanceUid: r.studyInstanceUid,
        transferSyntaxUid: r.transferSyntaxUid,
      })),
    );
    const now = this.clock();
    const max = this.opts.settings.maxAttempts;
    const summary: BatchSummary = { destination: name, attempted: rows.length, sent: 0, failed: 0, dead: 0, error: result.error };
    const seen = new Set<number>();
    for (const r of result.items) {
      const row = byId.get(r.id);
      if (!row) continue;
      seen.add(r.id);
      if (r.ok) {
        this.outbox.markSent(r.id, r.status, r.message ?? null);
        summary.sent++;
      } else {
        const state = this.outbox.markFailed(r.id, r.message ?? result.error ?? 'failed', {
          status: r.status,
          nextAttemptAt: now + this.backoffMs(row.attempts),
          maxAttempts: max,
          dead: r.permanent,
        });
        if (state === 'dead') {
          summary.dead++;
          log.warn('egress: instance given up (dead) until an operator retries it', {
            event: 'egress.dead',
            destination: name,
            id: r.id,
            attempts: row.attempts,
            study: ref(row.studyInstanceUid),
            sop: ref(row.sopInstanceUid),
            reason: r.message ?? result.error,
          });
        } else summary.failed++;
      }
    }
    // A sender that forgot an item: never leave a row in 'sending'.
    for (const row of rows) {
      if (seen.has(row.id)) continue;
      this.outbox.markFailed(row.id, result.error ?? 'no result from sender', {
        nextAttemptAt: now + this.backoffMs(row.attempts),
        maxAttempts: max,
      });
      summary.failed++;
    }
    if (summary.sent > 0) {
      this.outbox.destinationSucceeded(name);
    } else if (rows.length > 0) {
      const prev = this.outbox.destination(name).consecutiveFailures;
      const next = now + this.backoffMs(prev + 1);
      const n = this.outbox.destinationFailed(name, result.error ?? 'every instance failed', next);
      log.warn('egress: destination failed, backing off', {
        event: 'egress.destination_backoff',
        destination: name,
        consecutiveFailures: n,
        retryInMs: next - now,
        error: result.error,
      });
    }
    this.history.push(summary);
    if (this.history.length > 100) this.history.shift();
    return summary;
  }
}

function defaultSender(d: Destination, opts: EgressOptions): Sender {
  if (d.type === 'dimse') {
    return new DimseSender(d, { defaultCallingAeTitle: opts.callingAeTitle, batchTimeoutMs: opts.batchTimeoutMs });
  }
  return new StowSender(d, { timeoutMs: opts.batchTimeoutMs });
}
