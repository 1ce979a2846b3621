/**
 * Scheduled housekeeping (node-cron): retention, outbox sweep, model self-test, disk watermark.
 *
 * Every task is a plain async function run by `runOnce(task)`; the cron schedule only calls
 * runOnce. The clock is injected (`now()`), so tests drive retention with a controlled date instead
 * of waiting days. Each run is logged (winston, `event: 'housekeeping.*'`) and kept in `lastRuns()`
 * for the admin page.
 *
 * Tasks:
 *  - `retention`: deletes the stored instances, result files, outbox rows and job rows of studies
 *    whose newest instance is older than `storage.retentionDays` — but NEVER a study with a job still
 *    collecting/ready/running or with any outbox row that is not `sent` (a result not yet delivered,
 *    or dead and waiting for an operator, keeps its whole study). Orphan result folders
 *    (`results/job-N` with no job row) older than the cut-off go too, and so do a sender's copies of
 *    results handed over by worker processes (`results/handoff-<id>`, shared Redis queue) once none
 *    of their rows is unsent. A worker-only process (its results are sent by sender processes, from
 *    their own copies) keeps its result folders while any hand-off is still waiting or failed in Redis.
 *  - `outbox-sweep`: `egress.sendNow()` (the egress worker ticks by itself; this is a safety net and
 *    a visible heartbeat).
 *  - `model-selftest`: runs every ready lesion model on a small built-in synthetic DWI/ADC phantom
 *    (3 slices, a round restricted-diffusion lesion in a brain ellipse) through the same
 *    pre/post-processing as a study (pipelines/processor.ts segmentLesion) and records pass/fail
 *    (Dice against the phantom's lesion ≥ `selfTestMinDice`). Note: the self-test inferences count
 *    in the registry's per-model inference counter like any other run.
 *  - `disk-check`: free MB against `storage.minFreeMb`: 'ok', 'low' (under 2× the watermark) or
 *    'full' (under the watermark: receivers refuse data); logs a warning when not ok.
 */
import * as fs from 'fs';
import * as path from 'path';
import cron, { ScheduledTask } from 'node-cron';
import type { Config } from '../config/schema';
import type { Db } from '../store/db';
import type { InstanceStore } from '../store/instances';
import type { JobQueue } from './queue';
import type { ModelRegistry } from '../models/registry';
import type { EgressService } from '../egress/egress';
import { segmentLesion } from '../pipelines/processor';
import type { Volume } from '../types';
import { log, ref } from '../util/log';

export type HousekeepingTask = 'retention' | 'outbox-sweep' | 'model-selftest' | 'disk-check';
export const HOUSEKEEPING_TASKS: HousekeepingTask[] = ['retention', 'outbox-sweep', 'model-selftest', 'disk-check'];

/** Default cron expressions (node-cron syntax, local time). */
export const DEFAULT_SCHEDULES: Record<HousekeepingTask, string> = {
  retention: '7 * * * *', // hourly, at minute 7
  'outbox-sweep': '* * * * *', // every minute
  'model-selftest': '23 */6 * * *', // every 6 hours
  'disk-check': '*/5 * * * *', // every 5 minutes
};

export interface TaskRun {
  task: HousekeepingTask;
  startedAt: number;
  finishedAt: number;
  ok: boolean;
  /** What the run did, for the admin page (counts only: no identifiers). */
  summary: Record<string, unknown>;
  error?: string;
}

export interface SelfTestResult {
  model: string;
  version: string;
  at: number;
  pass: boolean;
  dice: number | null;
  lesionVoxels: number;
  expectedVoxels: number;
  ms: number;
  error?: string;
}

export type DiskLevel = 'ok' | 'low' | 'full';
export interface DiskStatus {
  at: number;
  freeMb: number;
  totalMb: number | null;
  minFreeMb: number;
  level: DiskLevel;
}

export interface RetentionSummary {
  cutoff: string;
  studiesDeleted: number;
  instancesDeleted: number;
  resultFoldersDeleted: number;
  outboxRowsDeleted: number;
  jobsDeleted: number;
  /** Old studies kept, by reason. */
  keptUnsent: number;
  keptActive: number;
  orphanResultFoldersDeleted: number;
}

/** What housekeeping needs from the node (a StrokeNode + registry + egress satisfies it). */
export interface HousekeepingNode {
  config: Config;
  db: Db;
  store: InstanceStore;
  queue: JobQueue;
}

export interface HousekeepingOptions {
  node: HousekeepingNode;
  registry: ModelRegistry;
  egress: EgressService;
  /** Epoch ms; defaults to Date.now (tests inject a controlled clock). */
  now?: () => number;
  /** Override cron expressions; `null` disables a task's schedule (runOnce still works). */
  schedules?: Partial<Record<HousekeepingTask, string | null>>;
  /** Dice against the phantom lesion a model must reach to pass its self-test. Default 0.5. */
  selfTestMinDice?: number;
  /** Where result folders live (default <storage.dir>/results, as the processor writes them). */
  resultsDir?: string;
  /**
   * A worker-only process on the shared queue: why its result folders must stay for now (hand-offs
   * not yet taken by a sender), or undefined when they may go.
   */
  keepResults?: () => Promise<string | undefined>;
}

const DAY_MS = 86_400_000;

export class Housekeeping {
  private readonly now: () => number;
  private readonly tasks: ScheduledTask[] = [];
  private readonly running = new Map<HousekeepingTask, Promise<TaskRun>>();
  private readonly runs = new Map<HousekeepingTask, TaskRun>();
  private readonly selfTestResults = new Map<string, SelfTestResult>();
  private disk: DiskStatus | null = null;
  private readonly resultsDir: string;

  constructor(private readonly opts: HousekeepingOptions) {
    this.now = opts.now ?? Date.now;
    this.resultsDir = opts.resultsDir ?? path.join(opts.node.config.storage.dir, 'results');
  }

  /** Schedule every task with node-cron. The schedule only triggers runOnce. */
  start(): void {
    if (this.tasks.length) return;
    for (const task of HOUSEKEEPING_TASKS) {
      const expr = this.opts.schedules?.[task] === undefined ? DEFAULT_SCHEDULES[task] : this.opts.schedules[task];
      if (expr === null) continue;
      if (!cron.validate(expr)) throw new Error(`housekeeping: invalid cron expression for ${task}: "${expr}"`);
      const t = cron.schedule(
        expr,
        () => {
          void this.runOnce(task);
        },
        { name: `housekeeping-${task}`, noOverlap: true },
      );
      this.tasks.push(t);
    }
    log.info('housekeeping scheduled', { event: 'housekeeping.scheduled', tasks: this.tasks.map((t) => `${t.name}: ${t.getPattern()}`) });
  }

  async stop(): Promise<void> {
    for (const t of this.tasks.splice(0)) await t.destroy();
    await Promise.all([...this.running.values()]);
  }

  /** Run one task now. A second call while the same task runs gets the same run (no overlap). */
  runOnce(task: HousekeepingTask): Promise<TaskRun> {
    const inFlight = this.running.get(task);
    if (inFlight) return inFlight;
    const p = this.execute(task).finally(() => this.running.delete(task));
    this.running.set(task, p);
    return p;
  }

  lastRuns(): Partial<Record<HousekeepingTask, TaskRun>> {
    return Object.fromEntries(this.runs);
  }

  selfTests(): SelfTestResult[] {
    return [...this.selfTestResults.values()];
  }

  diskStatus(): DiskStatus | null {
    return this.disk;
  }

  /** When each scheduled task runs next (null when not scheduled). */
  nextRuns(): Partial<Record<HousekeepingTask, string | null>> {
    const out: Partial<Record<HousekeepingTask, string | null>> = {};
    for (const t of this.tasks) {
      const task = (t.name ?? '').replace(/^housekeeping-/, '') as HousekeepingTask;
      out[task] = t.getNextRun()?.toISOString() ?? null;
    }
    return out;
  }

  private async execute(task: HousekeepingTask): Promise<TaskRun> {
    const startedAt = this.now();
    let run: TaskRun;
    try {
      let summary: Record<string, unknown>;
      switch (task) {
        case 'retention':
          summary = { ...(await this.retention()) };
          break;
        case 'outbox-sweep':
          summary = await this.outboxSweep();
          break;
        case 'model-selftest':
          summary = await this.modelSelfTest();
          break;
        case 'disk-check':
          summary = { ...this.diskCheck() };
          break;
      }
      run = { task, startedAt, finishedAt: this.now(), ok: true, summary };
      log.info('housekeeping run', { event: `housekeeping.${task}`, ok: true, ms: run.finishedAt - startedAt, ...summary });
    } catch (e) {
      run = { task, startedAt, finishedAt: this.now(), ok: false, summary: {}, error: (e as Error).message };
      log.error('housekeeping run failed', { event: 'housekeeping.failed', task, error: (e as Error).message });
    }
    this.runs.set(task, run);
    return run;
  }

  // ---------------------------------------------------------------- retention

  async retention(): Promise<RetentionSummary> {
    const { db, store, config } = this.opts.node;
    const cutoffMs = this.now() - config.storage.retentionDays * DAY_MS;
    const cutoff = new Date(cutoffMs).toISOString();
    const s: RetentionSummary = {
      cutoff,
      studiesDeleted: 0,
      instancesDeleted: 0,
      resultFoldersDeleted: 0,
      outboxRowsDeleted: 0,
      jobsDeleted: 0,
      keptUnsent: 0,
      keptActive: 0,
      orphanResultFoldersDeleted: 0,
    };
    // received_at is ISO 8601 UTC, so text order is time order.
    const old = db
      .prepare('SELECT study_uid AS uid FROM instances GROUP BY study_uid HAVING MAX(received_at) < ?')
      .all(cutoff) as { uid: string }[];
    // Studies with jobs but no instances left (e.g. deleted by hand) whose jobs finished before the cut-off.
    const jobOnly = db
      .prepare(
        `SELECT study_uid AS uid FROM jobs WHERE study_uid NOT IN (SELECT study_uid FROM instances)
         GROUP BY study_uid HAVING MAX(COALESCE(finished_at, last_instance_at)) < ?`,
      )
      .all(cutoffMs) as { uid: string }[];
    const hasOutbox = tableExists(db, 'egress_outbox');
    for (const { uid } of [...old, ...jobOnly]) {
      let active = (
        db.prepare("SELECT COUNT(*) AS n FROM jobs WHERE study_uid = ? AND state IN ('collecting','ready','running')").get(uid) as { n: number }
      ).n;
      // A shared queue: the study's job lives in Redis, maybe still waiting for a worker.
      if (!active && this.opts.node.queue.hasOpenJob && (await this.opts.node.queue.hasOpenJob(uid))) active = 1;
      if (active > 0) {
        s.keptActive++;
        log.info('retention: study kept, a job is still open', { event: 'housekeeping.retention_kept', study: ref(uid), reason: 'active-job' });
        continue;
      }
      const unsent = hasOutbox
        ? (db.prepare("SELECT COUNT(*) AS n FROM egress_outbox WHERE study_instance_uid = ? AND state <> 'sent'").get(uid) as { n: number }).n
        : 0;
      if (unsent > 0) {
        s.keptUnsent++;
        log.warn('retention: study kept, results not all sent', { event: 'housekeeping.retention_kept', study: ref(uid), reason: 'unsent-results', unsent });
        continue;
      }
      const jobs = db.prepare('SELECT id, outcome FROM jobs WHERE study_uid = ?').all(uid) as { id: number; outcome: string | null }[];
      for (const j of jobs) {
        for (const p of outcomePaths(j.outcome)) fs.rmSync(p, { force: true });
        const dir = path.join(this.resultsDir, `job-${j.id}`);
        if (fs.existsSync(dir)) {
          fs.rmSync(dir, { recursive: true, force: true });
          s.resultFoldersDeleted++;
        }
      }
      const tx = db.transaction(() => {
        s.instancesDeleted += store.deleteStudy(uid);
        if (hasOutbox) s.outboxRowsDeleted += db.prepare('DELETE FROM egress_outbox WHERE study_instance_uid = ?').run(uid).changes;
        // later jobs reference earlier ones (previous_job_id): one statement deletes the whole chain.
        s.jobsDeleted += db.prepare('DELETE FROM jobs WHERE study_uid = ?').run(uid).changes;
      });
      tx();
      s.studiesDeleted++;
      log.info('retention: study deleted', { event: 'housekeeping.retention_deleted', study: ref(uid), jobs: jobs.length });
    }
    // Result folders whose job row is gone (crash between write and commit, manual clean-up; on the
    // shared queue every job row is in Redis), and a sender's copies of handed-over results.
    const keep = await this.opts.keepResults?.();
    if (keep) log.info('retention: result folders kept', { event: 'housekeeping.retention_kept', reason: keep });
    if (fs.existsSync(this.resultsDir) && !keep) {
      const exists = db.prepare('SELECT 1 FROM jobs WHERE id = ?');
      for (const e of fs.readdirSync(this.resultsDir, { withFileTypes: true })) {
        const m = /^job-(\d+)$/.exec(e.name);
        const handedOver = /^handoff-/.test(e.name);
        if (!e.isDirectory() || (!m && !handedOver) || (m && exists.get(Number(m[1])))) continue;
        const full = path.join(this.resultsDir, e.name);
        if (fs.statSync(full).mtimeMs >= cutoffMs) continue;
        if (hasOutbox) {
          const pending = (
            db.prepare("SELECT COUNT(*) AS n FROM egress_outbox WHERE path LIKE ? AND state <> 'sent'").get(`${full}${path.sep}%`) as { n: number }
          ).n;
          if (pending > 0) continue;
        }
        fs.rmSync(full, { recursive: true, force: true });
        s.orphanResultFoldersDeleted++;
      }
    }
    return s;
  }

  // ---------------------------------------------------------------- outbox sweep

  private async outboxSweep(): Promise<Record<string, unknown>> {
    await this.opts.egress.sendNow();
    const stats = this.opts.egress.stats();
    return {
      destinations: stats.length,
      outbox: stats.reduce((n, d) => n + d.outboxSize, 0),
      dead: stats.reduce((n, d) => n + d.dead, 0),
    };
  }

  // ---------------------------------------------------------------- model self-test

  async modelSelfTest(): Promise<Record<string, unknown>> {
    const registry = this.opts.registry;
    const minDice = this.opts.selfTestMinDice ?? 0.5;
    const phantom = selfTestPhantom();
    const expected = phantom.lesion.reduce((n, v) => n + v, 0);
    const tested: string[] = [];
    let passed = 0;
    const names = new Set(registry.states().map((s) => s.name));
    for (const name of [...this.selfTestResults.keys()]) if (!names.has(name)) this.selfTestResults.delete(name);
    for (const st of registry.states()) {
      if (st.status !== 'ready' || st.task !== 'lesion-segmentation') continue;
      const t0 = performance.now();
      let r: SelfTestResult;
      try {
        const { mask } = await segmentLesion(registry, st.name, { DWI: phantom.dwi, ADC: phantom.adc }, {});
        let inter = 0;
        let found = 0;
        for (let i = 0; i < mask.length; i++) {
          if (mask[i]) found++;
          if (mask[i] && phantom.lesion[i]) inter++;
        }
        const dice = found + expected > 0 ? (2 * inter) / (found + expected) : 1;
        r = {
          model: st.name,
          version: st.version,
          at: this.now(),
          pass: dice >= minDice,
          dice: Math.round(dice * 1000) / 1000,
          lesionVoxels: found,
          expectedVoxels: expected,
          ms: Math.round(performance.now() - t0),
        };
      } catch (e) {
        r = { model: st.name, version: st.version, at: this.now(), pass: false, dice: null, lesionVoxels: 0, expectedVoxels: expected, ms: Math.round(performance.now() - t0), error: (e as Error).message };
      }
      this.selfTestResults.set(st.name, r);
      tested.push(st.name);
      if (r.pass) passed++;
      else log.warn('model self-test failed', { event: 'housekeeping.selftest_failed', model: st.name, dice: r.dice, error: r.error });
    }
    return { models: tested.length, passed, failed: tested.length - passed };
  }

  // ---------------------------------------------------------------- disk

  diskCheck(): DiskStatus {
    const { store, config } = this.opts.node;
    store.invalidateSpaceCache();
    const freeMb = store.freeMb();
    let totalMb: number | null = null;
    try {
      const s = fs.statfsSync(config.storage.dir);
      totalMb = (s.blocks * s.bsize) / (1024 * 1024);
    } catch {
      totalMb = null;
    }
    const minFreeMb = config.storage.minFreeMb;
    const level: DiskLevel = freeMb < minFreeMb ? 'full' : freeMb < 2 * minFreeMb ? 'low' : 'ok';
    this.disk = { at: this.now(), freeMb: Math.round(freeMb), totalMb: totalMb === null ? null : Math.round(totalMb), minFreeMb, level };
    if (level !== 'ok') {
      log.warn(level === 'full' ? 'disk below the free-space watermark: new data is refused' : 'disk approaching the free-space watermark', {
        event: 'housekeeping.disk_low',
        level,
        freeMb: this.disk.freeMb,
        minFreeMb,
      });
    }
    return this.disk;
  }
}

function tableExists(db: Db, name: string): boolean {
  return !!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name);
}

/** Paths of the result files a job's outcome lists (StudyOutcome.outputs[].path). */
function outcomePaths(outcome: string | null): string[] {
  if (!outcome) return [];
  try {
    const o = JSON.parse(outcome) as { outputs?: { path?: unknown }[] } | null;
    return (o?.outputs ?? []).map((x) => x.path).filter((p): p is string => typeof p === 'string');
  } catch {
    return [];
  }
}

export interface SelfTestPhantom {
  dwi: Volume;
  adc: Volume;
  /** 1 inside the lesion, on the DWI/ADC grid. */
  lesion: Uint8Array;
}

/**
 * A small synthetic DWI (b=1000) / ADC study: 96×96×3 at 2.5 mm in-plane, 5 mm slices; a brain
 * ellipse (S0 1000, ADC 750·10⁻⁶ mm²/s) with CSF ventricles (ADC 3000) and a round lesion of
 * restricted diffusion (ADC 350) on every slice. Signal follows S = S0·exp(−b·ADC), as scanner
 * images do. Deterministic (no noise), so a self-test result only changes when the model does.
 */
export function selfTestPhantom(): SelfTestPhantom {
  const rows = 96;
  const cols = 96;
  const slices = 3;
  const ps = 2.5;
  const n = rows * cols * slices;
  const dwi = new Float32Array(n);
  const adc = new Float32Array(n);
  const lesion = new Uint8Array(n);
  const b = 1000;
  for (let z = 0; z < slices; z++) {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const i = (z * rows + r) * cols + c;
        const y = (r - 47.5) / 38; // brain semi-axes: 38 rows, 32 columns
        const x = (c - 47.5) / 32;
        if (x * x + y * y > 1) continue;
        let a = 750;
        const vx = (c - 47.5) / 5;
        const vy = (r - 44) / 9;
        if (vx * vx + vy * vy <= 1) a = 3000; // ventricles
        const lx = c - 64;
        const ly = r - 36;
        if (lx * lx + ly * ly <= 7 * 7) {
          a = 350; // 17.5 mm radius lesion, right of the ventricles
          lesion[i] = 1;
        }
        adc[i] = a;
        dwi[i] = 1000 * Math.exp((-b * a) / 1e6);
      }
    }
  }
  const geometry = (): Volume['geometry'] => ({
    rows,
    columns: cols,
    slices,
    pixelSpacing: [ps, ps],
    sliceSpacing: 5,
    rowCosines: [1, 0, 0],
    columnCosines: [0, 1, 0],
    normal: [0, 0, 1],
    slicePositions: [0, 1, 2].map((z) => [-(cols / 2) * ps, -(rows / 2) * ps, z * 5] as [number, number, number]),
    frameOfReferenceUid: '2.25.1',
    warnings: [],
  });
  const src = (series: string) =>
    [0, 1, 2].map((z) => ({ sopInstanceUid: `${series}.${z + 1}`, sopClassUid: '1.2.840.10008.5.1.4.1.1.4', seriesInstanceUid: series }));
  return {
    dwi: { kind: 'DWI', geometry: geometry(), data: dwi, sliceSources: src('2.25.2'), bValue: b, seriesInstanceUid: '2.25.2', seriesDescription: 'self-test DWI' },
    adc: { kind: 'ADC', geometry: geometry(), data: adc, sliceSources: src('2.25.3'), seriesInstanceUid: '2.25.3', seriesDescription: 'self-test ADC' },
    lesion,
  };
}
