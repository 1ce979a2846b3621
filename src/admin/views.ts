/**
 * What the admin API returns: plain JSON views built from the node's state. Studies are shown by
 * `ref()` (a short non-reversible hash of the StudyInstanceUID); patient name/ID and the UID itself
 * only when `admin.showPatientIdentifiers` is true.
 */
import * as fs from 'fs';
import type { StrokeNode } from '../node';
import { NODE_VERSION } from '../node';
import type { ModelRegistry, ModelState } from '../models/registry';
import type { EgressService } from '../egress/egress';
import type { DestinationStats, OutboxRow, OutboxState } from '../egress/outbox';
import type { JobState, StudyJob } from '../jobs/queue';
import type { Housekeeping, SelfTestResult, TaskRun } from '../jobs/housekeeping';
import { ref } from '../util/log';
import { chooseRoute, studyFacts } from '../pipelines/routing';
import { readHeader } from '../study/header';
import type { HandoffCounts, RedisHandoff } from '../egress/redis-handoff';

export interface AdminDeps {
  node: StrokeNode;
  registry: ModelRegistry;
  egress: EgressService;
  housekeeping?: Housekeeping;
  /** Shared queue: the worker → sender hand-off of results. */
  handoff?: RedisHandoff;
}

export interface PatientView {
  patientId: string | null;
  patientName: string | null;
  studyInstanceUid: string;
}

export interface DeliveryView {
  total: number;
  sent: number;
  pending: number;
  failed: number;
  dead: number;
}

export interface OutcomeView {
  decision: string | null;
  route: string | null;
  model: { name: string; version: string; executionProvider: string } | null;
  /** CT-only studies: the CT→DWI model whose synthetic DWI the lesion model segmented. */
  synthesisModel: { name: string; version: string; executionProvider: string } | null;
  available: string[];
  seriesCount: number;
  lesionVolumeMl: number | null;
  coreVolumeMl: number | null;
  outputs: { kind: string; count: number }[];
  destinations: string[];
  /** 'shared': handed to the sender processes (delivery is on their admin pages, not this one's). */
  egressVia: string | null;
  timingsMs: Record<string, number>;
  reason: string | null;
  note: string | null;
  delivery: DeliveryView;
}

export interface JobView {
  id: number;
  studyRef: string;
  patient?: PatientView;
  route: string;
  priority: string;
  state: JobState;
  instanceCount: number;
  createdAt: number;
  readyAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  attempts: number;
  handoff: string | null;
  previousJobId: number | null;
  error: string | null;
  outcome: OutcomeView | null;
  /** Shared queue: the node name of the worker process that ran it. */
  worker?: string;
  /** Instances of this study received again after they were stored (re-sends, counted, not processed). */
  duplicates: number;
  /** An operator asked for this run ("Reprocess"). */
  manualReprocess: boolean;
}

export interface SeriesDecisionView {
  description: string | null;
  classification: string;
  usable: boolean;
  reason: string;
  bValues: number[] | null;
}

/** One task the processor considered (StudyOutcome.tasks, src/pipelines/tasks.ts): run or not, and why. */
export interface TaskDecisionView {
  task: string;
  title: string | null;
  /** Listed in the route's tasks (null: the outcome does not say). */
  listed: boolean | null;
  ran: boolean;
  reason: string | null;
  error: string | null;
  /** What it made, measured, used and noted, in words. */
  details: string[];
}

export interface DeliveryRowView {
  id: number;
  destination: string;
  state: OutboxState;
  attempts: number;
  lastError: string | null;
  lastStatus: number | null;
  sentAt: number | null;
  updatedAt: number;
}

export interface ObjectView {
  kind: string;
  seriesInstanceUid: string;
  sopRef: string;
  deliveries: DeliveryRowView[];
  /** When it went nowhere: why. */
  notSent: string | null;
}

export interface JobDetailView extends JobView {
  series: SeriesDecisionView[];
  notes: string[];
  tasks: TaskDecisionView[] | null;
  postprocessing: string | null;
  coreNote: string | null;
  objects: ObjectView[];
}

/** How the configured routes read this study's stored headers now (the route itself was chosen at arrival). */
export interface RouteCheckView {
  /** The route the rules pick now (null: none matches). */
  route: string | null;
  /** Local time the time-of-day rules were read at. */
  evaluatedAt: number;
  routes: { route: string; ok: boolean; checks: { field: string; operator: string; expected: unknown; actual: unknown; ok: boolean }[] }[];
}

export interface StudyDetailView {
  studyRef: string;
  patient?: PatientView;
  instances: number;
  duplicates: number;
  /** The series stored for the study (from the instance index). */
  storedSeries: { description: string | null; modality: string | null; seriesNumber: number | null; instances: number; duplicates: number }[];
  /** Every job of the study, latest first (a late instance or a reprocess opens a new job). */
  jobs: JobDetailView[];
  /** null when no instance is stored any more. */
  routeCheck: RouteCheckView | null;
}

export interface AlertView {
  /** Stable key (the page uses it as a test id). */
  id: string;
  level: 'error' | 'warn';
  kind: 'destination' | 'dead-letters' | 'dead-jobs' | 'disk' | 'models';
  text: string;
  since: number | null;
}

export interface OutboxGroupView {
  key: string;
  studyRef: string;
  destination: string;
  counts: Record<OutboxState, number>;
  total: number;
  kinds: string[];
  lastError: string | null;
  updatedAt: number;
  nextAttemptAt: number | null;
  /** Rows not yet sent (the expandable part). */
  rows: OutboxRowView[];
}

export interface ModelView extends ModelState {
  selfTest: SelfTestResult | null;
}

export interface OutboxRowView {
  id: number;
  destination: string;
  kind: string;
  studyRef: string;
  sopRef: string;
  state: OutboxState;
  attempts: number;
  lastError: string | null;
  lastStatus: number | null;
  createdAt: number;
  updatedAt: number;
  sentAt: number | null;
  nextAttemptAt: number | null;
}

export interface DestinationView extends DestinationStats {
  type: string;
  target: string;
  overlaySc: boolean;
  recentBatches: { attempted: number; sent: number; failed: number; dead: number; error?: string }[];
}

export interface DiskView {
  freeMb: number;
  totalMb: number | null;
  minFreeMb: number;
  level: 'ok' | 'low' | 'full';
  instancesMb: number;
  instances: number;
  retentionDays: number;
}

export interface StatusView {
  nodeName: string;
  version: string;
  startedAt: number;
  uptimeSeconds: number;
  paused: boolean;
  aeTitle: string;
  dimsePort: number | null;
  httpPort: number;
  showPatientIdentifiers: boolean;
  disk: DiskView;
  queue: Record<JobState, number>;
  models: { total: number; ready: number };
  housekeeping: { lastRuns: Partial<Record<string, TaskRun>>; nextRuns: Partial<Record<string, string | null>> } | null;
  serverTime: number;
}

const SOP_KINDS: [RegExp, string][] = [
  [/^1\.2\.840\.10008\.5\.1\.4\.1\.1\.66\.4$/, 'SEG'],
  [/^1\.2\.840\.10008\.5\.1\.4\.1\.1\.88\./, 'SR'],
  [/^1\.2\.840\.10008\.5\.1\.4\.1\.1\.7(\.|$)/, 'SC'],
];

export function sopKind(sopClassUid: string): string {
  return SOP_KINDS.find(([re]) => re.test(sopClassUid))?.[1] ?? 'other';
}

export class AdminViews {
  constructor(private readonly d: AdminDeps) {}

  private get showIds(): boolean {
    return this.d.node.config.admin.showPatientIdentifiers;
  }

  private patient(studyUid: string): PatientView | undefined {
    if (!this.showIds) return undefined;
    const r = this.d.node.db
      .prepare('SELECT patient_id AS id, patient_name AS name FROM instances WHERE study_uid = ? LIMIT 1')
      .get(studyUid) as { id: string | null; name: string | null } | undefined;
    return { patientId: r?.id ?? null, patientName: r?.name ?? null, studyInstanceUid: studyUid };
  }

  private delivery(sopUids: string[]): DeliveryView {
    const v: DeliveryView = { total: 0, sent: 0, pending: 0, failed: 0, dead: 0 };
    if (!sopUids.length) return v;
    const rows = this.d.node.db
      .prepare(
        `SELECT state, COUNT(*) AS n FROM egress_outbox WHERE sop_instance_uid IN (SELECT value FROM json_each(?)) GROUP BY state`,
      )
      .all(JSON.stringify(sopUids)) as { state: OutboxState; n: number }[];
    for (const r of rows) {
      v.total += r.n;
      if (r.state === 'sent') v.sent += r.n;
      else if (r.state === 'dead') v.dead += r.n;
      else if (r.state === 'failed') v.failed += r.n;
      else v.pending += r.n;
    }
    return v;
  }

  private outcome(raw: unknown): OutcomeView | null {
    if (!raw || typeof raw !== 'object') return null;
    const o = raw as Record<string, unknown>;
    const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
    const strOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : null);
    const av = (o.availability ?? {}) as { available?: Record<string, boolean>; series?: unknown[] };
    const outputs = Array.isArray(o.outputs) ? (o.outputs as { kind?: unknown; sopInstanceUid?: unknown }[]) : [];
    const kinds = new Map<string, number>();
    for (const x of outputs) {
      const k = typeof x.kind === 'string' ? x.kind : 'other';
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
    const m = o.model as { name?: unknown; version?: unknown; executionProvider?: unknown } | undefined;
    const sm = o.synthesisModel as { name?: unknown; version?: unknown; executionProvider?: unknown } | undefined;
    const timings: Record<string, number> = {};
    for (const [k, v] of Object.entries((o.timingsMs ?? {}) as Record<string, unknown>)) if (typeof v === 'number') timings[k] = v;
    return {
      decision: strOrNull(o.decision),
      route: strOrNull(o.route),
      model: m && typeof m.name === 'string' ? { name: m.name, version: String(m.version ?? ''), executionProvider: String(m.executionProvider ?? '') } : null,
      synthesisModel: sm && typeof sm.name === 'string' ? { name: sm.name, version: String(sm.version ?? ''), executionProvider: String(sm.executionProvider ?? '') } : null,
      available: Object.entries(av.available ?? {})
        .filter(([, v]) => v === true)
        .map(([k]) => k),
      seriesCount: Array.isArray(av.series) ? av.series.length : 0,
      lesionVolumeMl: num(o.lesionVolumeMl),
      coreVolumeMl: num(o.coreVolumeMl),
      outputs: [...kinds].map(([kind, count]) => ({ kind, count })),
      destinations: Array.isArray(o.destinations) ? (o.destinations as unknown[]).filter((x): x is string => typeof x === 'string') : [],
      egressVia: strOrNull(o.egressVia),
      timingsMs: timings,
      reason: typeof o.reason === 'string' ? o.reason.replace(/^(nothing usable: )+/, 'nothing usable: ') : null,
      note: strOrNull(o.note),
      delivery: this.delivery(outputs.map((x) => x.sopInstanceUid).filter((x): x is string => typeof x === 'string')),
    };
  }

  job(j: StudyJob): JobView {
    return {
      id: j.id,
      studyRef: ref(j.studyUid),
      patient: this.patient(j.studyUid),
      route: j.route,
      priority: j.priority,
      state: j.state,
      instanceCount: j.instanceCount,
      ...(j.worker ? { worker: j.worker } : {}),
      createdAt: j.createdAt,
      readyAt: j.readyAt,
      startedAt: j.startedAt,
      finishedAt: j.finishedAt,
      attempts: j.attempts,
      handoff: j.handoff,
      previousJobId: j.previousJobId,
      error: j.error,
      outcome: this.outcome(j.outcome),
      duplicates: this.d.node.store.studyDuplicates(j.studyUid),
      manualReprocess: j.handoff === 'operator-reprocess' || !!(j.outcome && typeof j.outcome === 'object' && (j.outcome as Record<string, unknown>).manualReprocess),
    };
  }

  studyRefOf(studyUid: string): string {
    return ref(studyUid);
  }

  /** Which study a key names: a job id, the study reference shown on the page, or the StudyInstanceUID. */
  async resolveStudy(key: string): Promise<string | undefined> {
    const jobs = await this.d.node.queue.list({ limit: 1000 });
    const byJob = jobs.find((x) => x.studyUid === key || ref(x.studyUid) === key);
    if (byJob) return byJob.studyUid;
    const stored = this.d.node.db.prepare('SELECT DISTINCT study_uid AS u FROM instances').all() as { u: string }[];
    const byStore = stored.find((r) => r.u === key || ref(r.u) === key)?.u;
    if (byStore) return byStore;
    if (/^\d{1,9}$/.test(key)) return (jobs.find((x) => x.id === Number(key)) ?? (await this.d.node.queue.get(Number(key))))?.studyUid;
    return undefined;
  }

  private jobDetail(j: StudyJob): JobDetailView {
    const base = this.job(j);
    const o = (j.outcome && typeof j.outcome === 'object' ? j.outcome : {}) as Record<string, unknown>;
    const av = (o.availability ?? {}) as { series?: unknown[]; notes?: unknown[] };
    const text = (v: unknown): string | null => (typeof v === 'string' ? v : null);
    const series: SeriesDecisionView[] = (Array.isArray(av.series) ? av.series : []).map((x) => {
      const sd = (x ?? {}) as Record<string, unknown>;
      return {
        description: text(sd.description) ?? text(sd.seriesDescription),
        classification: text(sd.classification) ?? '?',
        usable: sd.usable === true,
        reason: text(sd.reason) ?? '',
        bValues: Array.isArray(sd.bValues) ? (sd.bValues as unknown[]).filter((b): b is number => typeof b === 'number') : null,
      };
    });
    const tasks: TaskDecisionView[] | null = Array.isArray(o.tasks) ? (o.tasks as unknown[]).map((x) => taskView((x ?? {}) as Record<string, unknown>)) : null;
    const outputs = Array.isArray(o.outputs) ? (o.outputs as Record<string, unknown>[]) : [];
    const sops = outputs.map((x) => text(x.sopInstanceUid)).filter((x): x is string => !!x);
    const rows = sops.length
      ? (this.d.node.db
          .prepare(
            `SELECT id, destination, sop_instance_uid AS sop, state, attempts, last_error AS lastError, last_status AS lastStatus, sent_at AS sentAt, updated_at AS updatedAt
             FROM egress_outbox WHERE sop_instance_uid IN (SELECT value FROM json_each(?)) ORDER BY id`,
          )
          .all(JSON.stringify(sops)) as (DeliveryRowView & { sop: string })[])
      : [];
    const routeDestinations = Array.isArray(o.destinations) ? (o.destinations as unknown[]).filter((x): x is string => typeof x === 'string') : [];
    const objects: ObjectView[] = outputs.map((x) => {
      const sop = text(x.sopInstanceUid) ?? '';
      const deliveries = rows.filter((r) => r.sop === sop).map(({ sop: _sop, ...r }) => r);
      let notSent: string | null = null;
      if (!deliveries.length) {
        notSent = !routeDestinations.length
          ? `route "${base.route}" has no destination: kept on this node only`
          : o.egressVia === 'shared'
            ? `handed to the sender processes (shared queue) for ${routeDestinations.join(', ')}: delivery is on their admin page`
            : `not queued for ${routeDestinations.join(', ')} (outbox row missing or removed by retention)`;
      } else {
        const missing = routeDestinations.filter((d) => !deliveries.some((r) => r.destination === d));
        if (missing.length) notSent = `not queued for ${missing.join(', ')}`;
      }
      return { kind: text(x.kind) ?? 'other', seriesInstanceUid: text(x.seriesInstanceUid) ?? '', sopRef: ref(sop), deliveries, notSent };
    });
    return {
      ...base,
      series,
      notes: (Array.isArray(av.notes) ? av.notes : []).filter((n): n is string => typeof n === 'string'),
      tasks,
      postprocessing: text(o.postprocessing),
      coreNote: text(o.coreNote),
      objects,
    };
  }

  private routeChecks = new Map<string, { key: string; at: number; view: RouteCheckView }>();

  /** Route rules on one header per stored series (cached 30 s per study and instance count: the page polls). */
  private routeCheck(studyUid: string): RouteCheckView | null {
    const rows = this.d.node.store.listStudy(studyUid);
    if (!rows.length) return null;
    const key = `${rows.length}`;
    const hit = this.routeChecks.get(studyUid);
    if (hit && hit.key === key && Date.now() - hit.at < 30_000) return hit.view;
    const firstOfSeries = [...new Map(rows.map((x) => [x.seriesInstanceUid, x])).values()].slice(0, 200);
    const headers = firstOfSeries.map((x) => readHeader(x)).filter((h) => !h.error).map((h) => h.ds);
    const now = new Date();
    const facts = studyFacts(headers, { calledAeTitle: rows[0].calledAe ?? undefined, callingAeTitle: rows[0].sourceAe }, now);
    const chosen = chooseRoute(this.d.node.config.routes, facts);
    const view: RouteCheckView = {
      route: chosen.route?.name ?? null,
      evaluatedAt: now.getTime(),
      routes: chosen.evaluations.map((e) => ({
        route: e.route,
        ok: e.ok,
        checks: e.checks.map((c) => ({ field: c.field, operator: c.operator, expected: c.expected, actual: c.actual, ok: c.ok })),
      })),
    };
    if (this.routeChecks.size > 200) this.routeChecks.clear();
    this.routeChecks.set(studyUid, { key, at: Date.now(), view });
    return view;
  }

  async studyDetail(studyUid: string): Promise<StudyDetailView> {
    const jobs = (await this.d.node.queue.list({ limit: 1000 })).filter((j) => j.studyUid === studyUid);
    const stored = this.d.node.db
      .prepare(
        `SELECT series_description AS description, modality, series_number AS seriesNumber, COUNT(*) AS instances, COALESCE(SUM(duplicates),0) AS duplicates
         FROM instances WHERE study_uid = ? GROUP BY series_uid ORDER BY series_number, MIN(received_at)`,
      )
      .all(studyUid) as StudyDetailView['storedSeries'];
    return {
      studyRef: ref(studyUid),
      patient: this.patient(studyUid),
      instances: stored.reduce((n, s) => n + s.instances, 0),
      duplicates: stored.reduce((n, s) => n + s.duplicates, 0),
      storedSeries: stored,
      jobs: jobs.map((j) => this.jobDetail(j)),
      routeCheck: this.routeCheck(studyUid),
    };
  }

  /** What needs an operator now. Each alert holds while its condition does and goes when it clears. */
  async alerts(known?: { disk?: DiskView; queue?: Record<JobState, number> }): Promise<AlertView[]> {
    const { node, registry } = this.d;
    const out: AlertView[] = [];
    const now = Date.now();
    for (const d of this.d.egress.stats()) {
      const failing = d.consecutiveFailures > 0 && (!d.lastSuccessAt || (d.lastFailureAt ?? 0) > d.lastSuccessAt);
      if (failing) {
        const wait = d.nextAttemptAt && d.nextAttemptAt > now ? `; circuit open, next attempt in ${Math.ceil((d.nextAttemptAt - now) / 1000)} s` : '';
        out.push({
          id: `destination-${d.destination}`,
          level: 'error',
          kind: 'destination',
          text: `Destination ${d.destination} is failing: ${d.consecutiveFailures} failed attempt${d.consecutiveFailures === 1 ? '' : 's'} in a row${d.lastError ? ` (${d.lastError})` : ''}${wait}; ${d.outboxSize} result(s) waiting`,
          since: d.lastFailureAt,
        });
      }
      if (d.dead) {
        out.push({
          id: `dead-${d.destination}`,
          level: 'error',
          kind: 'dead-letters',
          text: `${d.dead} result(s) for ${d.destination} are dead letters (delivery gave up): retry them from the destinations or outbox panel`,
          since: null,
        });
      }
    }
    const counts = known?.queue ?? (await node.queue.counts());
    if (counts.dead) {
      out.push({ id: 'dead-jobs', level: 'error', kind: 'dead-jobs', text: `${counts.dead} study job(s) failed every attempt (dead): see the queue panel`, since: null });
    }
    const disk = known?.disk ?? this.disk();
    if (disk.level !== 'ok') {
      out.push({
        id: 'disk',
        level: disk.level === 'full' ? 'error' : 'warn',
        kind: 'disk',
        text:
          disk.level === 'full'
            ? `Disk below the free-space floor: ${disk.freeMb} MB free, floor ${disk.minFreeMb} MB: new studies are refused`
            : `Disk near the free-space floor: ${disk.freeMb} MB free, floor ${disk.minFreeMb} MB (studies are refused below it)`,
        since: null,
      });
    }
    if (node.roles.worker) {
      for (const m of registry.states()) {
        if (m.status === 'ready') continue;
        out.push({
          id: `model-${m.name}`,
          level: m.status === 'loading' ? 'warn' : 'error',
          kind: 'models',
          text: `Model ${m.name} is ${m.status}${m.lastError ? `: ${m.lastError}` : ''}`,
          since: null,
        });
      }
    }
    return out;
  }

  /** The outbox by study x destination: one group per pair with rows not yet sent, newest first. */
  outboxGroups(limit = 100): OutboxGroupView[] {
    const db = this.d.node.db;
    const pairs = db
      .prepare(
        `SELECT study_instance_uid AS study, destination, MAX(updated_at) AS updated FROM egress_outbox
         WHERE state != 'sent' GROUP BY study_instance_uid, destination ORDER BY updated DESC LIMIT ?`,
      )
      .all(limit) as { study: string; destination: string; updated: number }[];
    return pairs.map((p) => {
      const all = this.d.egress.outbox.list({ studyInstanceUid: p.study, destination: p.destination, limit: 1000 });
      const counts: Record<OutboxState, number> = { pending: 0, sending: 0, sent: 0, failed: 0, dead: 0 };
      for (const r of all) counts[r.state]++;
      const open = all.filter((r) => r.state !== 'sent');
      const latestErr = open.filter((r) => r.lastError).sort((a, b) => b.updatedAt - a.updatedAt)[0];
      const waits = open.filter((r) => r.state === 'failed' || r.state === 'pending').map((r) => r.nextAttemptAt);
      return {
        key: `${ref(p.study)}|${p.destination}`,
        studyRef: ref(p.study),
        destination: p.destination,
        counts,
        total: all.length,
        kinds: [...new Set(all.map((r) => sopKind(r.sopClassUid)))].sort(),
        lastError: latestErr?.lastError ?? null,
        updatedAt: p.updated,
        nextAttemptAt: waits.length ? Math.min(...waits) : null,
        rows: open.map((r) => this.outboxRow(r)),
      };
    });
  }

  /**
   * Operator: send failed rows again now (attempts reset, backoff lifted), optionally only one
   * destination's or one study's (by reference); `includeDead` takes dead rows too. Returns how many.
   */
  retryFailed(filter: { destination?: string; studyRef?: string; includeDead?: boolean }): number {
    const states: OutboxState[] = filter.includeDead ? ['failed', 'dead'] : ['failed'];
    const rows = this.d.egress.outbox
      .list({ destination: filter.destination, state: states, limit: 100000 })
      .filter((r) => !filter.studyRef || ref(r.studyInstanceUid) === filter.studyRef);
    let n = 0;
    for (const r of rows) if (this.d.egress.outbox.retry(r.id)) n++;
    return n;
  }

  async studies(limit = 50): Promise<JobView[]> {
    return (await this.d.node.queue.list({ limit })).map((j) => this.job(j));
  }

  async queue(limit = 50): Promise<{ backend: string; counts: Record<JobState, number>; jobs: Record<JobState, JobView[]>; handoff: HandoffCounts | null }> {
    const q = this.d.node.queue;
    const counts = await q.counts();
    const jobs = {} as Record<JobState, JobView[]>;
    const states = Object.keys(counts) as JobState[];
    const lists = await Promise.all(states.map((s) => q.list({ states: [s], limit })));
    states.forEach((s, i) => (jobs[s] = lists[i].map((j) => this.job(j))));
    // Shared queue: results handed from worker processes to sender processes (src/egress/redis-handoff.ts).
    const handoff = this.d.handoff ? await this.d.handoff.counts() : null;
    return { backend: q.backend, counts, jobs, handoff };
  }

  models(): ModelView[] {
    const tests = new Map((this.d.housekeeping?.selfTests() ?? []).map((t) => [t.model, t]));
    return this.d.registry.states().map((s) => ({ ...s, selfTest: tests.get(s.name) ?? null }));
  }

  destinations(): DestinationView[] {
    const cfg = new Map(this.d.node.config.destinations.map((d) => [d.name, d]));
    return this.d.egress.stats().map((s) => {
      const c = cfg.get(s.destination);
      const target = !c ? '(not configured)' : c.type === 'dimse' ? `${c.calledAeTitle}@${c.host}:${c.port}` : stripCredentials(c.url);
      return {
        ...s,
        type: c?.type ?? 'unknown',
        target,
        overlaySc: c?.overlaySc ?? false,
        recentBatches: this.d.egress.history
          .filter((b) => b.destination === s.destination)
          .slice(-10)
          .map((b) => ({ attempted: b.attempted, sent: b.sent, failed: b.failed, dead: b.dead, error: b.error })),
      };
    });
  }

  outboxRow(r: OutboxRow): OutboxRowView {
    return {
      id: r.id,
      destination: r.destination,
      kind: sopKind(r.sopClassUid),
      studyRef: ref(r.studyInstanceUid),
      sopRef: ref(r.sopInstanceUid),
      state: r.state,
      attempts: r.attempts,
      lastError: r.lastError,
      lastStatus: r.lastStatus,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      sentAt: r.sentAt,
      nextAttemptAt: r.state === 'failed' || r.state === 'pending' ? r.nextAttemptAt : null,
    };
  }

  outbox(filter: { destination?: string; state?: OutboxState[]; limit?: number }): OutboxRowView[] {
    return this.d.egress.outbox.list({ destination: filter.destination, state: filter.state, limit: filter.limit ?? 200 }).map((r) => this.outboxRow(r));
  }

  disk(): DiskView {
    const { node } = this.d;
    const freeMb = Math.round(node.store.freeMb());
    let totalMb: number | null = null;
    try {
      const s = fs.statfsSync(node.config.storage.dir);
      totalMb = Math.round((s.blocks * s.bsize) / (1024 * 1024));
    } catch {
      totalMb = null;
    }
    const min = node.config.storage.minFreeMb;
    const agg = node.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM instances').get() as { n: number; b: number };
    return {
      freeMb,
      totalMb,
      minFreeMb: min,
      level: freeMb < min ? 'full' : freeMb < 2 * min ? 'low' : 'ok',
      instancesMb: Math.round((agg.b / (1024 * 1024)) * 10) / 10,
      instances: agg.n,
      retentionDays: node.config.storage.retentionDays,
    };
  }

  async status(): Promise<StatusView> {
    const { node, registry, housekeeping } = this.d;
    const states = registry.states();
    return {
      nodeName: node.config.nodeName,
      version: NODE_VERSION,
      startedAt: node.startedAt,
      uptimeSeconds: Math.round((Date.now() - node.startedAt) / 1000),
      paused: node.paused,
      aeTitle: node.config.dimse.aeTitle,
      dimsePort: node.dimsePort ?? null,
      httpPort: node.httpPort,
      showPatientIdentifiers: this.showIds,
      disk: this.disk(),
      queue: await node.queue.counts(),
      models: { total: states.length, ready: states.filter((s) => s.status === 'ready').length },
      housekeeping: housekeeping ? { lastRuns: housekeeping.lastRuns(), nextRuns: housekeeping.nextRuns() } : null,
      serverTime: Date.now(),
    };
  }
}

function taskView(t: Record<string, unknown>): TaskDecisionView {
  const text = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  const details: string[] = [];
  if (t.inputsMissing === true) details.push('none of its inputs in the study');
  if (Array.isArray(t.outputs) && t.outputs.length) {
    details.push(`made ${(t.outputs as { kind?: unknown; count?: unknown }[]).map((o) => `${String(o.kind)}${typeof o.count === 'number' && o.count > 1 ? ` x${o.count}` : ''}`).join(', ')}`);
  }
  if (t.measurements && typeof t.measurements === 'object') {
    const m = Object.entries(t.measurements as Record<string, unknown>).filter(([, v]) => typeof v === 'number' && Number.isFinite(v));
    if (m.length) details.push(m.map(([k, v]) => `${k} ${Math.round((v as number) * 100) / 100}`).join(', '));
  }
  if (Array.isArray(t.models) && t.models.length) {
    details.push(`models ${(t.models as { name?: unknown; version?: unknown }[]).map((x) => `${String(x.name)} ${String(x.version ?? '')}`.trim()).join(', ')}`);
  }
  if (Array.isArray(t.notes)) for (const n of t.notes) if (typeof n === 'string') details.push(n);
  if (Array.isArray(t.checks) && t.checks.length) {
    const checks = (t.checks as Record<string, unknown>[]).map(
      (c) => `${String(c.field ?? '?')} ${String(c.operator ?? '')} ${JSON.stringify(c.expected ?? null)} (study: ${JSON.stringify(c.actual ?? null)}) ${c.ok === true ? 'yes' : 'no'}`,
    );
    details.push(`conditions: ${checks.join('; ')}`);
  }
  return {
    task: text(t.task) ?? text(t.id) ?? '?',
    title: text(t.title),
    listed: typeof t.listed === 'boolean' ? t.listed : null,
    ran: t.run === true || t.ran === true,
    reason: text(t.reason),
    error: text(t.error),
    details,
  };
}

function stripCredentials(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}
