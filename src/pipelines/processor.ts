/**
 * The study processor, generic over tasks: a stable study's instances → study/ (classify, assemble) → the
 * route's tasks (tasks.ts: which run and why) → each task's pipeline (src/pipelines/<task>/) → results saved
 * under the job's folder → egress outbox, with timings per stage and provenance on every object. Returns the
 * outcome the admin page shows, with a decision for every task (StudyOutcome.tasks).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Route } from '../config/schema';
import type { HandoffMeta } from '../egress/handoff';
import { StudyProcessor, ProcessResult } from '../node';
import { assembleStudy } from '../study';
import { AvailabilityRecord, StoredInstance } from '../types';
import { log, ref } from '../util/log';
import { studyFacts } from './routing';
import type { ModelUse, ProcessorDeps, TaskObject } from './task';
import { TaskDecision, routeTaskEntries, selectTasks } from './tasks';

export type { ProcessorDeps } from './task';
// The stroke helpers lived here before tasks: kept importable from here.
export { segmentLesion, adcBValue, coreMeasurement } from './common';

export interface StudyOutcome {
  route: string;
  /** The first task that ran: 'lesion' (stroke-mr), 'ct-synthesis' (stroke-ct), 'brain-tumour'; 'none' when none ran. */
  decision: string;
  /** Every task of this build: listed on the route or not, run or not, and why (tasks.ts). */
  tasks: TaskDecision[];
  model?: ModelUse;
  /** CT-only studies: the synthesis model that made the synthetic DWI the lesion model ran on. */
  synthesisModel?: ModelUse;
  availability: {
    available: AvailabilityRecord['available'];
    series: { description?: string; classification: string; usable: boolean; reason: string; bValues?: number[] }[];
    notes: string[];
    /** The liver task's judgement of the CT/MR series and its pick (src/study/abdomen.ts). */
    abdomen?: AvailabilityRecord['abdomen'];
  };
  lesionVolumeMl?: number;
  coreVolumeMl?: number;
  /** Why no core volume was reported although an ADC was there (e.g. ADC from b = 2500), or how it was applied. */
  coreNote?: string;
  /** What the lesion post-processing did (lesion-postprocess.ts), in words. */
  postprocessing?: string;
  outputs: { kind: string; sopInstanceUid: string; seriesInstanceUid: string; path: string; task?: string }[];
  destinations: string[];
  /** How the results went to egress: this process's outbox, or the shared queue to sender processes. */
  egressVia?: 'local' | 'shared';
  timingsMs: Record<string, number>;
  reason?: string;
  note?: string;
}

/** Why nothing ran, in one line: "nothing usable: ..." when the study has none of what the listed tasks read. */
function notRunReason(decisions: TaskDecision[], av: AvailabilityRecord, route: Route): string {
  const listed = decisions.filter((d) => d.listed);
  if (listed.every((d) => d.inputsMissing)) {
    const ids = routeTaskEntries(route).map((e) => e.task);
    const stroke = ids.every((id) => id === 'stroke-mr' || id === 'stroke-ct');
    // a route with other tasks (tumour, liver): each task's own reason names what it looked for and why it refused it
    const why = stroke ? (av.notes.length ? av.notes.join('; ') : 'no DWI, ADC or head CT series found') : listed.map((d) => `${d.task}: ${d.reason}`).join('; ');
    return `nothing usable: ${why}`;
  }
  return listed.map((d) => `${d.task}: ${d.reason}`).join('; ');
}

export function createProcessor(deps: ProcessorDeps): StudyProcessor {
  const { registry } = deps;
  return async (job, instances: StoredInstance[], route: Route): Promise<ProcessResult> => {
    const timings: Record<string, number> = {};
    const tStart = performance.now();
    let t = performance.now();
    const study = await assembleStudy(instances, { t1ContrastFromStudyContext: route.sequences.t1ContrastFromStudyContext });
    timings.assemble = performance.now() - t;
    const av = study.availability;
    const availability: StudyOutcome['availability'] = {
      available: av.available,
      series: av.series.map((s) => ({ description: s.seriesDescription, classification: s.classification, usable: s.usable, reason: s.reason, bValues: s.bValues })),
      notes: av.notes,
      ...(av.abdomen && av.abdomen.series.some((x) => x.modality === 'CT' || x.modality === 'MR') ? { abdomen: av.abdomen } : {}),
    };
    // The embedded store's rows carry the called AE (a shared queue's references do not: then unknown).
    const first = instances[0] as (StoredInstance & { calledAe?: string | null }) | undefined;
    const facts = studyFacts(study.headers.values(), { calledAeTitle: first?.calledAe ?? undefined, callingAeTitle: first?.sourceAe });
    const selection = selectTasks(route, av, registry, facts);
    const base: StudyOutcome = {
      route: route.name,
      decision: 'none',
      tasks: selection.decisions,
      availability,
      outputs: [],
      destinations: route.destinations,
      egressVia: deps.handoff?.kind,
      timingsMs: timings,
    };
    for (const d of selection.decisions) if (!d.run) d.ran = false;
    if (!selection.toRun.length) {
      const reason = notRunReason(selection.decisions, av, route);
      log.warn('study not processed', { event: 'study.not_processed', job: job.id, study: ref(job.studyUid), reason });
      return { state: 'not_processed', outcome: { ...base, reason } };
    }

    const objects: (TaskObject & { task: string })[] = [];
    const fields: Record<string, unknown> = {};
    const errors: string[] = [];
    const notes: string[] = [...selection.notes];
    for (const { task, plan } of selection.toRun) {
      const d = selection.decisions.find((x) => x.task === task.id)!;
      t = performance.now();
      try {
        const r = await task.run({ deps, job: { id: job.id, studyUid: job.studyUid }, route, study, plan, timings, tStart });
        objects.push(...r.objects.map((o) => ({ ...o, task: task.id })));
        const kinds = new Map<string, number>();
        for (const o of r.objects) kinds.set(o.kind, (kinds.get(o.kind) ?? 0) + 1);
        d.outputs = [...kinds].map(([kind, count]) => ({ kind, count }));
        d.measurements = r.measurements;
        d.notes = r.notes;
        d.models = r.models.map((m) => ({ name: m.name, version: m.version }));
        d.ran = true;
        // The first task that ran sets the top-level fields (model, lesion volume, note...) the admin page reads.
        for (const [k, v] of Object.entries(r.outcome ?? {})) if (!(k in fields) && v !== undefined) fields[k] = v;
      } catch (e) {
        d.ran = false;
        d.error = (e as Error).message;
        errors.push(`${task.id}: ${d.error}`);
        log.error('task failed', { event: 'task.failed', job: job.id, study: ref(job.studyUid), task: task.id, error: d.error });
      }
      timings[`task:${task.id}`] = performance.now() - t;
    }
    // Nothing made: fail the job (retried, then dead-lettered) as a failing study did before tasks.
    if (!objects.length && errors.length) throw new Error(errors.join('; '));
    if (errors.length) notes.push(`failed: ${errors.join('; ')}`);

    t = performance.now();
    const outputs = await saveAndSend(deps, { job: job.id, studyUid: job.studyUid }, route, objects);
    timings.store = performance.now() - t;
    timings.total = performance.now() - tStart;
    for (const k of Object.keys(timings)) timings[k] = Math.round(timings[k] * 10) / 10;
    const note = [fields.note as string | undefined, ...notes].filter(Boolean).join('; ') || undefined;
    const outcome: StudyOutcome = { ...base, ...fields, outputs, note } as StudyOutcome;
    log.info('study results written', {
      event: 'study.results',
      job: job.id,
      study: ref(job.studyUid),
      tasks: selection.toRun.map((r) => r.task.id).join(','),
      model: outcome.model?.name,
      synthesisModel: outcome.synthesisModel?.name,
      lesionMl: outcome.lesionVolumeMl,
      outputs: outputs.length,
      ms: timings.total,
    });
    return { state: 'done', outcome };
  };
}

/**
 * Save result objects under the job's results folder and hand them to egress (awaited: the job is
 * only recorded done once its results are durable in an outbox or in the shared queue).
 */
async function saveAndSend(
  deps: ProcessorDeps,
  meta: HandoffMeta,
  route: Route,
  objects: (TaskObject & { task: string })[],
): Promise<StudyOutcome['outputs']> {
  const dir = path.join(deps.resultsDir, `job-${meta.job}`);
  fs.mkdirSync(dir, { recursive: true });
  const outputs: StudyOutcome['outputs'] = [];
  const overlay = new Set<string>();
  for (const o of objects) {
    const p = path.join(dir, `${o.kind}-${o.sop}.dcm`);
    fs.writeFileSync(p, o.part10);
    outputs.push({ kind: o.kind, sopInstanceUid: o.sop, seriesInstanceUid: o.series, path: p, task: o.task });
    if (o.overlayOnly) overlay.add(o.sop);
  }
  if (deps.handoff && route.destinations.length) {
    const file = (o: StudyOutcome['outputs'][number]) => ({ path: o.path, sopInstanceUid: o.sopInstanceUid, seriesInstanceUid: o.seriesInstanceUid, studyInstanceUid: meta.studyUid });
    const overlayDests = deps.config.destinations.filter((d) => route.destinations.includes(d.name) && d.overlaySc).map((d) => d.name);
    await deps.handoff.handOff(
      [
        { files: outputs.filter((o) => !overlay.has(o.sopInstanceUid)).map(file), destinations: route.destinations },
        { files: outputs.filter((o) => overlay.has(o.sopInstanceUid)).map(file), destinations: overlayDests },
      ],
      meta,
    );
  }
  return outputs;
}
