/**
 * The study processor: a stable study's instances → study/ (classify, assemble) → route →
 * model inference → results/ (SEG, SR, optional overlay SC) → egress outbox, with timings per stage
 * and provenance on every object. Returns the outcome the admin page shows.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Config, Route } from '../config/schema';
import { EgressService } from '../egress/egress';
import { ModelRegistry } from '../models/registry';
import { StudyProcessor, ProcessResult } from '../node';
import {
  DeploymentOptions,
  Provenance,
  adcCoreVolumeMl,
  ischaemicLesionSegment,
  writeMeasurementSr,
  writeOverlaySc,
  buildSeg,
} from '../results';
import { assembleStudy } from '../study';
import { AvailabilityRecord, StoredInstance, Volume } from '../types';
import { log, ref } from '../util/log';
import { logitsToMask, prepareInput } from './preprocess';
import { decideRoute } from './route';

export interface ProcessorDeps {
  config: Config;
  registry: ModelRegistry;
  egress?: EgressService;
  nodeVersion: string;
  resultsDir: string;
}

export interface StudyOutcome {
  route: string;
  decision: string;
  model?: { name: string; version: string; sha256: string; executionProvider: string };
  availability: { available: AvailabilityRecord['available']; series: { description?: string; classification: string; usable: boolean; reason: string; bValues?: number[] }[]; notes: string[] };
  lesionVolumeMl?: number;
  coreVolumeMl?: number;
  outputs: { kind: string; sopInstanceUid: string; seriesInstanceUid: string; path: string }[];
  destinations: string[];
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
    const base: StudyOutcome = { route: route.name, decision: decision.kind, availability, outputs: [], destinations: route.destinations, timingsMs: timings };
    if (decision.kind === 'none') {
      log.warn('study not processed', { event: 'study.not_processed', job: job.id, study: ref(job.studyUid), reason: decision.reason });
      return { state: 'not_processed', outcome: { ...base, reason: decision.reason } };
    }
    if (decision.kind === 'ct-synthesis') {
      return { state: 'not_processed', outcome: { ...base, reason: 'CT→DWI synthesis is not available in this build' } };
    }

    const model = registry.get(decision.model)!;
    const { ref: refVol, mask } = await segmentLesion(registry, decision.model, { DWI: study.volumes.DWI, ADC: study.volumes.ADC }, timings);

    t = performance.now();
    const sources = [study.volumes.DWI, study.volumes.ADC].filter((v): v is Volume => !!v);
    const provenance: Provenance = {
      nodeName: config.nodeName,
      nodeVersion: deps.nodeVersion,
      modelName: model.manifest.name,
      modelVersion: model.manifest.version,
      modelSha256: model.manifest.sha256,
      executionProvider: model.state.executionProvider ?? 'cpu',
      sourceSeriesUids: [...new Set(sources.map((v) => v.seriesInstanceUid))],
      processingMs: Math.round(performance.now() - tStart),
      synthetic: false,
    };
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
    let core: { volumeMl: number; region: 'lesion' } | undefined;
    if (study.volumes.ADC && study.volumes.ADC.geometry.slices === refVol.geometry.slices && study.volumes.ADC.geometry.rows === refVol.geometry.rows && study.volumes.ADC.geometry.columns === refVol.geometry.columns) {
      core = { volumeMl: adcCoreVolumeMl(study.volumes.ADC, mask), region: 'lesion' };
    }
    const sr = writeMeasurementSr({
      sourceHeader: study.headers.get(refVol.sliceSources[0].sopInstanceUid)!,
      sourceSlices: refVol.sliceSources,
      seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid },
      findingLabel: 'Ischaemic lesion',
      lesionVolumeMl: lesionMl,
      core,
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
    const dir = path.join(deps.resultsDir, `job-${job.id}`);
    fs.mkdirSync(dir, { recursive: true });
    const outputs: StudyOutcome['outputs'] = [];
    const save = (kind: string, buf: Buffer, sop: string, series: string) => {
      const p = path.join(dir, `${kind}-${sop}.dcm`);
      fs.writeFileSync(p, buf);
      outputs.push({ kind, sopInstanceUid: sop, seriesInstanceUid: series, path: p });
    };
    save('SEG', seg.part10, seg.sopInstanceUid, seg.seriesInstanceUid);
    save('SR', sr.part10, sr.sopInstanceUid, sr.seriesInstanceUid);
    for (const inst of overlay?.instances ?? []) save('OVERLAY', inst.part10, inst.sopInstanceUid, overlay!.seriesInstanceUid);
    if (deps.egress && route.destinations.length) {
      const plain = outputs.filter((o) => o.kind !== 'OVERLAY').map((o) => ({ path: o.path }));
      deps.egress.enqueue(plain, route.destinations);
      const overlayDests = config.destinations.filter((d) => route.destinations.includes(d.name) && d.overlaySc).map((d) => d.name);
      const ov = outputs.filter((o) => o.kind === 'OVERLAY').map((o) => ({ path: o.path }));
      if (ov.length && overlayDests.length) deps.egress.enqueue(ov, overlayDests);
    }
    timings.store = performance.now() - t;
    timings.total = performance.now() - tStart;
    for (const k of Object.keys(timings)) timings[k] = Math.round(timings[k] * 10) / 10;
    const outcome: StudyOutcome = {
      ...base,
      model: { name: model.manifest.name, version: model.manifest.version, sha256: model.manifest.sha256, executionProvider: provenance.executionProvider },
      lesionVolumeMl: Math.round(lesionMl * 100) / 100,
      coreVolumeMl: core ? Math.round(core.volumeMl * 100) / 100 : undefined,
      outputs,
      note: decision.note,
    };
    log.info('study results written', { event: 'study.results', job: job.id, study: ref(job.studyUid), model: model.manifest.name, lesionMl: outcome.lesionVolumeMl, outputs: outputs.length, ms: timings.total });
    return { state: 'done', outcome };
  };
}
