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
      reason: strOrNull(o.reason),
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
    };
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
