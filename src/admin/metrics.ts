/**
 * Prometheus metrics (prom-client, the node's own Registry, so two nodes in one process — tests —
 * never share counters). Event counters come from the node's EventEmitter; states (models, queue,
 * outbox, disk) are read at scrape time, so a scrape always shows the database's truth.
 *
 * Names (all prefixed `stroke_node_`):
 *   instances_received_total{transport,status}   counter  (status: stored | duplicate)
 *   received_bytes_total{transport}               counter
 *   ingest_failures_total{transport}              counter
 *   studies_processed_total{outcome}              counter  (outcome: done | not_processed | failed | dead | ready (retry))
 *   study_processing_seconds{outcome}             histogram
 *   inference_seconds{model}                      histogram (outcome.timingsMs.inference of each study)
 *   model_status{model,status}                    gauge 1 for the model's current status
 *   model_inferences{model}                       gauge (registry counter, self-tests included)
 *   model_selftest_pass{model}                    gauge 1/0 after a self-test ran
 *   outbox_rows{destination,state}                gauge
 *   egress_batches_total{destination,result}      counter (result: ok | failed)
 *   egress_send_failures_total{destination}       counter (instances that failed or went dead)
 *   egress_destination_consecutive_failures{destination} gauge
 *   disk_free_megabytes / disk_min_free_megabytes gauge
 *   jobs{state}                                   gauge
 *   egress_handoff_jobs{state}                    gauge (shared queue: results waiting for a sender; waiting | active | delayed | failed)
 *   processing_paused                             gauge 1/0
 *   up_since_seconds                              gauge (process start, epoch s)
 * plus prom-client's default process metrics (prefixed `stroke_node_`).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StrokeNode } from '../node';
import type { ModelRegistry } from '../models/registry';
import type { EgressService, BatchSummary } from '../egress/egress';
import type { OutboxState } from '../egress/outbox';
import type { Housekeeping } from '../jobs/housekeeping';
import type { RedisHandoff } from '../egress/redis-handoff';

const P = 'stroke_node_';
const OUTBOX_STATES: OutboxState[] = ['pending', 'sending', 'sent', 'failed', 'dead'];
const MODEL_STATUSES = ['loading', 'ready', 'disabled', 'error'];

export interface MetricsDeps {
  node: StrokeNode;
  registry: ModelRegistry;
  egress: EgressService;
  housekeeping?: Housekeeping;
  /** Shared queue: the worker → sender hand-off of results. */
  handoff?: RedisHandoff;
}

interface InstanceEvent {
  transport: string;
  bytes: number;
  status: string;
}

interface FinishedEvent {
  state: string;
  ms: number;
  outcome: unknown;
}

function inferenceOf(outcome: unknown): { model: string; seconds: number } | undefined {
  if (!outcome || typeof outcome !== 'object') return undefined;
  const o = outcome as { model?: { name?: unknown }; timingsMs?: Record<string, unknown> };
  const ms = o.timingsMs?.inference;
  if (typeof o.model?.name !== 'string' || typeof ms !== 'number') return undefined;
  return { model: o.model.name, seconds: ms / 1000 };
}

export interface NodeMetrics {
  registry: Registry;
  /** Count egress batches finished since the last call (called before each scrape, and every second). */
  refresh(): void;
}

export function createMetrics(deps: MetricsDeps): NodeMetrics {
  const { node, registry, egress, housekeeping, handoff } = deps;
  const reg = new Registry();
  collectDefaultMetrics({ register: reg, prefix: P });

  const received = new Counter({ name: `${P}instances_received_total`, help: 'DICOM instances received', labelNames: ['transport', 'status'], registers: [reg] });
  const bytes = new Counter({ name: `${P}received_bytes_total`, help: 'Bytes of DICOM instances received', labelNames: ['transport'], registers: [reg] });
  const ingestFailures = new Counter({ name: `${P}ingest_failures_total`, help: 'Instances refused or lost at ingest', labelNames: ['transport'], registers: [reg] });
  const studies = new Counter({ name: `${P}studies_processed_total`, help: 'Study jobs finished, by outcome', labelNames: ['outcome'], registers: [reg] });
  const studySeconds = new Histogram({
    name: `${P}study_processing_seconds`,
    help: 'Wall time to process one study (assemble → results queued)',
    labelNames: ['outcome'],
    buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
    registers: [reg],
  });
  const inference = new Histogram({
    name: `${P}inference_seconds`,
    help: 'Model inference time for one study (all slices)',
    labelNames: ['model'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [reg],
  });
  for (const t of ['dimse', 'stow']) {
    bytes.inc({ transport: t }, 0);
    ingestFailures.inc({ transport: t }, 0);
  }

  node.events.on('instance', (e: InstanceEvent) => {
    received.inc({ transport: e.transport, status: e.status });
    bytes.inc({ transport: e.transport }, e.bytes);
  });
  node.events.on('ingest-failure', (e: { transport: string }) => ingestFailures.inc({ transport: e.transport }));
  node.events.on('study-finished', (e: FinishedEvent) => {
    studies.inc({ outcome: e.state });
    studySeconds.observe({ outcome: e.state }, e.ms / 1000);
    const inf = inferenceOf(e.outcome);
    if (inf) inference.observe({ model: inf.model }, inf.seconds);
  });

  new Gauge({
    name: `${P}model_status`,
    help: 'Model status (1 for the current status)',
    labelNames: ['model', 'status'],
    registers: [reg],
    collect() {
      this.reset();
      for (const s of registry.states()) for (const st of MODEL_STATUSES) this.set({ model: s.name, status: st }, s.status === st ? 1 : 0);
    },
  });
  new Gauge({
    name: `${P}model_inferences`,
    help: 'Inferences run by each model since it was loaded (self-tests included)',
    labelNames: ['model'],
    registers: [reg],
    collect() {
      this.reset();
      for (const s of registry.states()) this.set({ model: s.name }, s.inferences);
    },
  });
  new Gauge({
    name: `${P}model_selftest_pass`,
    help: 'Last self-test of each model on the built-in phantom: 1 passed, 0 failed',
    labelNames: ['model'],
    registers: [reg],
    collect() {
      this.reset();
      for (const r of housekeeping?.selfTests() ?? []) this.set({ model: r.model }, r.pass ? 1 : 0);
    },
  });
  new Gauge({
    name: `${P}outbox_rows`,
    help: 'Outbox rows per destination and state',
    labelNames: ['destination', 'state'],
    registers: [reg],
    collect() {
      this.reset();
      for (const d of egress.stats()) for (const st of OUTBOX_STATES) this.set({ destination: d.destination, state: st }, d[st]);
    },
  });
  new Gauge({
    name: `${P}egress_destination_consecutive_failures`,
    help: 'Failed batches in a row per destination (0 after a success)',
    labelNames: ['destination'],
    registers: [reg],
    collect() {
      this.reset();
      for (const d of egress.stats()) this.set({ destination: d.destination }, d.consecutiveFailures);
    },
  });

  // Batch counters come from the egress history buffer (last 100 batches); each summary is counted once.
  const batches = new Counter({ name: `${P}egress_batches_total`, help: 'Batches sent per destination, by result', labelNames: ['destination', 'result'], registers: [reg] });
  const sendFailures = new Counter({ name: `${P}egress_send_failures_total`, help: 'Instance sends that failed (retried later or dead)', labelNames: ['destination'], registers: [reg] });
  const seen = new WeakSet<BatchSummary>();
  const absorbHistory = (): void => {
    for (const b of egress.history) {
      if (seen.has(b)) continue;
      seen.add(b);
      batches.inc({ destination: b.destination, result: b.sent > 0 ? 'ok' : 'failed' });
      sendFailures.inc({ destination: b.destination }, b.failed + b.dead);
    }
  };
  for (const d of egress.stats()) sendFailures.inc({ destination: d.destination }, 0);
  const poll = setInterval(absorbHistory, 1000);
  poll.unref();
  node.addService({ name: 'metrics', start: () => undefined, stop: () => clearInterval(poll) });

  new Gauge({
    name: `${P}disk_free_megabytes`,
    help: 'Free space on the storage filesystem (MB)',
    registers: [reg],
    collect() {
      this.set(Math.round(node.store.freeMb()));
    },
  });
  new Gauge({ name: `${P}disk_min_free_megabytes`, help: 'Free-space watermark below which data is refused (storage.minFreeMb)', registers: [reg] }).set(
    node.config.storage.minFreeMb,
  );
  new Gauge({
    name: `${P}jobs`,
    help: 'Study jobs by state',
    labelNames: ['state'],
    registers: [reg],
    async collect() {
      for (const [state, n] of Object.entries(await node.queue.counts())) this.set({ state }, n);
    },
  });
  if (handoff) {
    new Gauge({
      name: `${P}egress_handoff_jobs`,
      help: 'Shared queue: result hand-offs from workers to senders, by state (failed = kept until an operator retries)',
      labelNames: ['state'],
      registers: [reg],
      async collect() {
        const c = await handoff.counts();
        for (const state of ['waiting', 'active', 'delayed', 'failed'] as const) this.set({ state }, c[state]);
      },
    });
  }
  new Gauge({
    name: `${P}processing_paused`,
    help: '1 when an operator paused processing',
    registers: [reg],
    collect() {
      this.set(node.paused ? 1 : 0);
    },
  });
  new Gauge({ name: `${P}up_since_seconds`, help: 'When the node started (epoch seconds)', registers: [reg] }).set(Math.floor(node.startedAt / 1000));
  return { registry: reg, refresh: absorbHistory };
}
