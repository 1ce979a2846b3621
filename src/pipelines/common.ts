/**
 * Helpers every task uses: the deployment fields of result objects, the provenance of a model's result,
 * and running a lesion model on DWI/ADC (shared by stroke-mr, stroke-ct and the daily model self-test).
 */
import type { Config } from '../config/schema';
import type { LoadedModel, ModelRegistry } from '../models/registry';
import type { NaturalDataset } from '../dicom/dcmjs';
import {
  DeploymentOptions,
  Provenance,
  adcCoreVolumeMl,
  buildSeg,
  coreThresholdValidity,
  ischaemicLesionSegment,
  writeMeasurementSr,
  writeOverlaySc,
  type MeasurementSrResult,
  type ScSeriesResult,
  type SegResult,
} from '../results';
import type { Volume } from '../types';
import { logitsToMask, prepareInput } from './preprocess';
import type { ModelUse, ProcessorDeps } from './task';

export function deployment(config: Config, nodeVersion: string): DeploymentOptions {
  return {
    manufacturer: config.output.manufacturer,
    manufacturerModelName: 'stroke-ai-dicom-node',
    softwareVersions: nodeVersion,
    institutionName: config.output.institutionName,
    disclaimer: config.output.disclaimer || undefined,
  };
}

/** Provenance of a result made by `model` from the given source series (the fields every output carries). */
export function provenanceOf(deps: ProcessorDeps, model: LoadedModel, sourceSeriesUids: string[], tStart: number, synthetic: boolean): Provenance {
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

/** The outcome's record of a model that ran. */
export function modelUse(m: LoadedModel): ModelUse {
  return { name: m.manifest.name, version: m.manifest.version, sha256: m.manifest.sha256, executionProvider: m.state.executionProvider ?? 'cpu' };
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

/**
 * The stroke lesion results on `ref` (stroke-mr: the acquired DWI/ADC grid; stroke-ct: the synthetic DWI):
 * a one-segment "Ischaemic lesion" SEG (series base + 1), the TID 1500 measurement SR that references it
 * (series base + 2, with the ADC core volume / note where given) and, when wanted, the overlay SC (base + 3).
 */
export function writeLesionResults(args: {
  ref: Volume;
  mask: Uint8Array;
  headers: Map<string, NaturalDataset>;
  model: LoadedModel;
  provenance: Provenance;
  deployment: DeploymentOptions;
  seriesBase: number;
  core?: { volumeMl: number; region: 'lesion' };
  coreNote?: string;
  overlay: boolean;
}): { seg: SegResult; sr: MeasurementSrResult; overlay?: ScSeriesResult; lesionMl: number } {
  const { ref, mask, headers, model, provenance, seriesBase } = args;
  const dep = args.deployment;
  const seg = buildSeg({
    source: ref,
    mask,
    sourceHeaders: headers,
    segments: [ischaemicLesionSegment(model.manifest.name, model.manifest.version)],
    provenance,
    deployment: dep,
    options: { seriesNumber: seriesBase + 1 },
  });
  const lesionMl = seg.segmentVolumesMl[0] ?? 0;
  const sr = writeMeasurementSr({
    sourceHeader: headers.get(ref.sliceSources[0].sopInstanceUid)!,
    sourceSlices: ref.sliceSources,
    seg: { sopInstanceUid: seg.sopInstanceUid, seriesInstanceUid: seg.seriesInstanceUid },
    findingLabel: 'Ischaemic lesion',
    lesionVolumeMl: lesionMl,
    core: args.core,
    coreNote: args.coreNote,
    algorithmName: model.manifest.name,
    algorithmVersion: model.manifest.version,
    provenance,
    deployment: dep,
    options: { seriesNumber: seriesBase + 2 },
  });
  const overlay = args.overlay
    ? writeOverlaySc({ image: ref, mask, lesionVolumeMl: lesionMl, sourceHeaders: headers, provenance, deployment: dep, options: { seriesNumber: seriesBase + 3 } })
    : undefined;
  return { seg, sr, overlay, lesionMl };
}
