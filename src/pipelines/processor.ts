/**
 * The study processor: a stable study's instances → study/ (classify, assemble) → route →
 * model inference → results/ (SEG, SR, optional overlay SC) → egress outbox, with timings per stage
 * and provenance on every object. Returns the outcome the admin page shows.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Config, Route } from '../config/schema';
import type { HandoffMeta, ResultHandoff } from '../egress/handoff';
import { LoadedModel, ModelRegistry } from '../models/registry';
import { StudyProcessor, ProcessResult } from '../node';
import {
  DeploymentOptions,
  Provenance,
  adcCoreVolumeMl,
  coreThresholdValidity,
  ischaemicLesionSegment,
  writeMeasurementSr,
  writeOverlaySc,
  writeSyntheticSc,
  buildSeg,
} from '../results';
import { AssembledStudy, assembleStudy } from '../study';
import { AvailabilityRecord, StoredInstance, Volume } from '../types';
import { log, ref } from '../util/log';
import { postprocessLesionMask } from './lesion-postprocess';
import { logitsToMask, prepareInput } from './preprocess';
import { RouteDecision, decideRoute } from './route';
import { synthesiseDwi } from './synthesis';

export interface ProcessorDeps {
  config: Config;
  registry: ModelRegistry;
  /** Where result files go for sending: the local outbox, or the shared queue of a worker-only process. */
  handoff?: ResultHandoff;
  nodeVersion: string;
  resultsDir: string;
}

export interface StudyOutcome {
  route: string;
  decision: string;
  model?: { name: string; version: string; sha256: string; executionProvider: string };
  /** CT-only studies: the synthesis model that made the synthetic DWI the lesion model ran on. */
  synthesisModel?: { name: string; version: string; sha256: string; executionProvider: string };
  availability: { available: AvailabilityRecord['available']; series: { description?: string; classification: string; usable: boolean; reason: string; bValues?: number[] }[]; notes: string[] };
  lesionVolumeMl?: number;
  coreVolumeMl?: number;
  /** Why no core volume was reported although an ADC was there (e.g. ADC from b = 2500), or how it was applied. */
  coreNote?: string;
  /** What the lesion post-processing did (lesion-postprocess.ts), in words. */
  postprocessing?: string;
  outputs: { kind: string; sopInstanceUid: string; seriesInstanceUid: string; path: string }[];
  destinations: string[];
  /** How the results went to egress: this process's outbox, or the shared queue to sender processes. */
  egressVia?: 'local' | 'shared';
  timingsMs: Record<string, number>;
  reason?: string;
  note?: string;
}

function deployment(config: Config, nodeVersion: string): DeploymentOptions {
  return {
    manufacturer: config.output.manufacturer,
    manufacturerModelName: 'stroke-ai-dicom-node',
    softwareVersions: nodeVersion,
    institutionName: config.output.institutionName,
    disclaimer: config.output.disclaimer || undefined,
  };
}

/** Provenance of a result made by `model` from the given source series (the fields every output carries). */
function provenanceOf(deps: ProcessorDeps, model: LoadedModel, sourceSeriesUids: string[], tStart: number, synthetic: boolean): Provenance {
  return {
    nodeName: deps.config.nodeName,
    nodeVersion: deps.nodeVersion,
    modelName: model.manifest.name,
    modelVersion: model.manifest.version,
    modelSha256: model.manifest.sha256,
    executionProvider: model.state.executionProvider ?? 'cpu',
    sourceSeriesUids,
    processingMs: Math.round(performance.now() - tStart),
    synthetic,
  };
}

/** Run a lesion model on the study's DWI/ADC; returns the mask on the reference (DWI if any) grid. */
export async function segmentLesion(
  registry: ModelRegistry,
  modelName: string,
  volumes: { DWI?: Volume; ADC?: Volume },
  timings: Record<string, number>,
): Promise<{ ref: Volume; mask: Uint8Array }> {
  const entry = registry.get(modelName);
  if (!entry) throw new Error(`model ${modelName} missing`);
  const ref = volumes.DWI ?? volumes.ADC;
  if (!ref) throw new Error('no DWI or ADC volume');
  let t = performance.now();
  const prepared = prepareInput(entry.manifest, ref, { DWI: volumes.DWI, ADC: volumes.ADC });
  timings.preprocess = (timings.preprocess ?? 0) + performance.now() - t;
  t = performance.now();
  const out = await registry.run(modelName, prepared.feeds);
  timings.inference = (timings.inference ?? 0) + performance.now() - t;
  t = performance.now();
  const logits = out[entry.manifest.outputs.tensor];
  if (!logits) throw new Error(`model ${modelName} returned no "${entry.manifest.outputs.tensor}" output`);
  const { mask } = logitsToMask(logits.data, ref, prepared.grid);
  timings.postprocess = (timings.postprocess ?? 0) + performance.now() - t;
  return { ref, mask };
}

/**
 * The b-value an ADC map was computed at: its own when it carries one; else the trace DWI's (the node's own ADC
 * is computed from it, and a scanner's ADC comes from the same diffusion acquisition, whose highest b the study
 * assembly kept as the DWI). Undefined when neither says.
 */
export function adcBValue(adc: Volume, dwi?: Volume): number | undefined {
  if (adc.bValue !== undefined && adc.bValue > 0) return adc.bValue;
  return dwi?.bValue !== undefined && dwi.bValue > 0 ? dwi.bValue : undefined;
}

/**
 * The ischaemic core (ADC < 620 inside the lesion) for the SR, with the sentence the SR carries about it. The 620
 * threshold is defined for ADC at b ~ 1000: for an ADC from a b-value outside ADC_CORE_B_RANGE no volume is
 * returned, only the note saying why. No ADC on the lesion grid: neither.
 */
export function coreMeasurement(adc: Volume | undefined, dwi: Volume | undefined, ref: Volume, mask: Uint8Array): { core?: { volumeMl: number; region: 'lesion' }; coreNote?: string } {
  const g = ref.geometry;
  if (!adc || adc.geometry.slices !== g.slices || adc.geometry.rows !== g.rows || adc.geometry.columns !== g.columns) return {};
  const validity = coreThresholdValidity(adcBValue(adc, dwi));
  return { core: validity.applies ? { volumeMl: adcCoreVolumeMl(adc, mask), region: 'lesion' } : undefined, coreNote: validity.note };
}

export function createProcessor(deps: ProcessorDeps): StudyProcessor {
  const { config, registry } = deps;
  return async (job, instances: StoredInstance[], route: Route): Promise<ProcessResult> => {
    const timings: Record<string, number> = {};
    const tStart = performance.now();
    let t = performance.now();
    const study = await assembleStudy(instances);
    timings.assemble = performance.now() - t;
    const av = study.availability;
    const availability: StudyOutcome['availability'] = {
      available: av.available,
      series: av.series.map((s) => ({ description: s.seriesDescription, classification: s.classification, usable: s.usable, reason: s.reason, bValues: s.bValues })),
      notes: av.notes,
    };
    const decision = decideRoute(av, route, registry);
    const base: StudyOutcome = { route: route.name, decision: decision.kind, availability, outputs: [], destinations: route.destinations, egressVia: deps.handoff?.kind, timingsMs: timings };
    if (decision.kind === 'none') {
      log.warn('study not processed', { event: 'study.not_processed', job: job.id, study: ref(job.studyUid), reason: decision.reason });
      return { state: 'not_processed', outcome: { ...base, reason: decision.reason } };
    }
    if (decision.kind === 'ct-synthesis') {
      return processCtSynthesis(deps, { job: job.id, studyUid: job.studyUid }, route, study, decision, base, timings, tStart);
    }

    const model = registry.get(decision.model)!;
    const { ref: refVol, mask: modelMask } = await segmentLesion(registry, decision.model, { DWI: study.volumes.DWI, ADC: study.volumes.ADC }, timings);
    // False-positive control that follows the physics (brain mask, minimum size, restricted diffusion per component)
    t = performance.now();
    const pp = postprocessLesionMask(modelMask, { ref: refVol, dwi: study.volumes.DWI, b0: study.volumes.DWI_B0, adc: study.volumes.ADC }, config.lesionPostprocess);
    const mask = pp.mask;
    timings.lesionPostprocess = performance.now() - t;

    t = performance.now();
    const sources = [study.volumes.DWI, study.volumes.ADC].filter((v): v is Volume => !!v);
    const provenance = { ...provenanceOf(deps, model, [...new Set(sources.map((v) => v.seriesInstanceUid))], tStart, false), postprocessing: pp.report.summary };
    const dep = deployment(config, deps.nodeVersion);
    const seriesBase = config.output.seriesNumberBase;
    const seg = buildSeg({
      source: refVol,
      mask,
      sourceHeaders: study.headers,
      segments: [ischaemicLesionSegment(model.manifest.name, model.manifest.version)],
      provenance,
      deployment: dep,
      options: { seriesNumber: seriesBase + 1 },
    });
    const lesionMl = seg.segmentVolumesMl[0] ?? 0;
    const { core, coreNote } = coreMeasurement(study.volumes.ADC, study.volumes.DWI, refVol, mask);
    const sr = writeMeasurementSr({
      sourceHeader: study.headers.get(refVol.sliceSources[0].sopInstanceUid)!,
      sourceSlices: refVol.sliceSources,
      seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid },
      findingLabel: 'Ischaemic lesion',
      lesionVolumeMl: lesionMl,
      core,
      coreNote,
      algorithmName: model.manifest.name,
      algorithmVersion: model.manifest.version,
      provenance,
      deployment: dep,
      options: { seriesNumber: seriesBase + 2 },
    });
    const wantOverlay = config.destinations.some((d) => route.destinations.includes(d.name) && d.overlaySc);
    const overlay = wantOverlay
      ? writeOverlaySc({ image: refVol, mask, lesionVolumeMl: lesionMl, sourceHeaders: study.headers, provenance, deployment: dep, options: { seriesNumber: seriesBase + 3 } })
      : undefined;
    timings.encode = performance.now() - t;

    t = performance.now();
    const outputs = await saveAndSend(deps, { job: job.id, studyUid: job.studyUid }, route, [
      { kind: 'SEG', part10: seg.part10, sop: seg.sopInstanceUid, series: seg.seriesInstanceUid },
      { kind: 'SR', part10: sr.part10, sop: sr.sopInstanceUid, series: sr.seriesInstanceUid },
      ...(overlay?.instances ?? []).map((i) => ({ kind: 'OVERLAY', part10: i.part10, sop: i.sopInstanceUid, series: overlay!.seriesInstanceUid })),
    ]);
    timings.store = performance.now() - t;
    timings.total = performance.now() - tStart;
    for (const k of Object.keys(timings)) timings[k] = Math.round(timings[k] * 10) / 10;
    const outcome: StudyOutcome = {
      ...base,
      model: { name: model.manifest.name, version: model.manifest.version, sha256: model.manifest.sha256, executionProvider: provenance.executionProvider },
      lesionVolumeMl: Math.round(lesionMl * 100) / 100,
      coreVolumeMl: core ? Math.round(core.volumeMl * 100) / 100 : undefined,
      coreNote,
      postprocessing: pp.report.summary,
      outputs,
      note: decision.note,
    };
    log.info('study results written', { event: 'study.results', job: job.id, study: ref(job.studyUid), model: model.manifest.name, lesionMl: outcome.lesionVolumeMl, outputs: outputs.length, ms: timings.total });
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
  objects: { kind: string; part10: Buffer; sop: string; series: string }[],
): Promise<StudyOutcome['outputs']> {
  const dir = path.join(deps.resultsDir, `job-${meta.job}`);
  fs.mkdirSync(dir, { recursive: true });
  const outputs: StudyOutcome['outputs'] = [];
  for (const o of objects) {
    const p = path.join(dir, `${o.kind}-${o.sop}.dcm`);
    fs.writeFileSync(p, o.part10);
    outputs.push({ kind: o.kind, sopInstanceUid: o.sop, seriesInstanceUid: o.series, path: p });
  }
  if (deps.handoff && route.destinations.length) {
    const file = (o: StudyOutcome['outputs'][number]) => ({ path: o.path, sopInstanceUid: o.sopInstanceUid, seriesInstanceUid: o.seriesInstanceUid, studyInstanceUid: meta.studyUid });
    const overlayDests = deps.config.destinations.filter((d) => route.destinations.includes(d.name) && d.overlaySc).map((d) => d.name);
    await deps.handoff.handOff(
      [
        { files: outputs.filter((o) => o.kind !== 'OVERLAY').map(file), destinations: route.destinations },
        { files: outputs.filter((o) => o.kind === 'OVERLAY').map(file), destinations: overlayDests },
      ],
      meta,
    );
  }
  return outputs;
}

/**
 * CT only: brain mask from the CT → synthetic DWI (ct2dwi) on the CT grid → Secondary Capture series
 * (SYNTHETIC, banner, CT slices referenced) → the lesion model on the synthetic DWI (DWI only) → a SEG
 * that references the synthetic SC instances and says it was derived from a synthetic image → the
 * measurement SR. Everything goes to the route's destinations.
 */
async function processCtSynthesis(
  deps: ProcessorDeps,
  meta: HandoffMeta,
  route: Route,
  study: AssembledStudy,
  decision: Extract<RouteDecision, { kind: 'ct-synthesis' }>,
  base: StudyOutcome,
  timings: Record<string, number>,
  tStart: number,
): Promise<ProcessResult> {
  const { config, registry } = deps;
  const ct = study.volumes.CT;
  if (!ct) return { state: 'not_processed', outcome: { ...base, reason: 'CT route chosen but no CT volume was assembled' } };
  const synthModel = registry.get(decision.synthesisModel)!;
  const lesionModel = registry.get(decision.lesionModel)!;
  const synth = await synthesiseDwi(registry, decision.synthesisModel, ct, timings);

  let t = performance.now();
  const dep = deployment(config, deps.nodeVersion);
  const seriesBase = config.output.seriesNumberBase;
  const synthProvenance = provenanceOf(deps, synthModel, [ct.seriesInstanceUid], tStart, true);
  const sc = writeSyntheticSc({
    image: synth.dwi,
    sourceHeaders: study.headers,
    provenance: synthProvenance,
    deployment: dep,
    derivationDescription:
      `SYNTHETIC diffusion-weighted image (b=${synth.bValue}, ${synth.scale} = normal white matter) computed by ${synthModel.manifest.name} ` +
      `${synthModel.manifest.version} from CT series ${ct.seriesInstanceUid} with a brain mask from the CT; not acquired by an MR scanner.`,
    options: { seriesNumber: seriesBase + 4, seriesDescription: `SYNTHETIC DWI from CT (AI, not acquired) ${synthModel.manifest.name}` },
  });
  timings.encodeSc = performance.now() - t;

  // The lesion model reads the synthetic DWI alone (the missing-modality model's DWI-only path).
  const { mask } = await segmentLesion(registry, decision.lesionModel, { DWI: sc.volume }, timings);
  t = performance.now();
  const provenance = provenanceOf(deps, lesionModel, [sc.seriesInstanceUid, ct.seriesInstanceUid], tStart, true);
  const seg = buildSeg({
    source: sc.volume,
    mask,
    sourceHeaders: sc.headers,
    segments: [ischaemicLesionSegment(lesionModel.manifest.name, lesionModel.manifest.version)],
    provenance,
    deployment: dep,
    options: { seriesNumber: seriesBase + 1 },
  });
  const lesionMl = seg.segmentVolumesMl[0] ?? 0;
  const sr = writeMeasurementSr({
    sourceHeader: sc.headers.get(sc.volume.sliceSources[0].sopInstanceUid)!,
    sourceSlices: sc.volume.sliceSources,
    seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid },
    findingLabel: 'Ischaemic lesion',
    lesionVolumeMl: lesionMl,
    algorithmName: lesionModel.manifest.name,
    algorithmVersion: lesionModel.manifest.version,
    provenance,
    deployment: dep,
    options: { seriesNumber: seriesBase + 2 },
  });
  const wantOverlay = config.destinations.some((d) => route.destinations.includes(d.name) && d.overlaySc);
  const overlay = wantOverlay
    ? writeOverlaySc({ image: sc.volume, mask, lesionVolumeMl: lesionMl, sourceHeaders: sc.headers, provenance, deployment: dep, options: { seriesNumber: seriesBase + 3 } })
    : undefined;
  timings.encode = performance.now() - t;

  t = performance.now();
  const objects = [
    ...sc.instances.map((i) => ({ kind: 'SYNTHETIC_DWI', part10: i.part10, sop: i.sopInstanceUid, series: sc.seriesInstanceUid })),
    { kind: 'SEG', part10: seg.part10, sop: seg.sopInstanceUid, series: seg.seriesInstanceUid },
    { kind: 'SR', part10: sr.part10, sop: sr.sopInstanceUid, series: sr.seriesInstanceUid },
    ...(overlay?.instances ?? []).map((i) => ({ kind: 'OVERLAY', part10: i.part10, sop: i.sopInstanceUid, series: overlay!.seriesInstanceUid })),
  ];
  const outputs = await saveAndSend(deps, meta, route, objects);
  timings.store = performance.now() - t;
  timings.total = performance.now() - tStart;
  for (const k of Object.keys(timings)) timings[k] = Math.round(timings[k] * 10) / 10;
  const ep = (m: typeof lesionModel) => ({ name: m.manifest.name, version: m.manifest.version, sha256: m.manifest.sha256, executionProvider: m.state.executionProvider ?? 'cpu' });
  const outcome: StudyOutcome = {
    ...base,
    model: ep(lesionModel),
    synthesisModel: ep(synthModel),
    lesionVolumeMl: Math.round(lesionMl * 100) / 100,
    outputs,
    note: [`CT only: lesion segmented on a SYNTHETIC DWI made by ${synthModel.manifest.name} from the CT`, decision.note].filter(Boolean).join('; '),
  };
  log.info('study results written (synthetic DWI from CT)', {
    event: 'study.results',
    job: meta.job,
    study: ref(study.availability.studyInstanceUid),
    model: lesionModel.manifest.name,
    synthesisModel: synthModel.manifest.name,
    lesionMl: outcome.lesionVolumeMl,
    outputs: outputs.length,
    ms: timings.total,
  });
  return { state: 'done', outcome };
}
