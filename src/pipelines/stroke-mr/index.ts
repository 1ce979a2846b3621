/**
 * Task stroke-mr: acute ischaemic lesion on acquired diffusion MR.
 *   needs   DWI and/or ADC (a usable series of either)
 *   models  route.models.dwiAdc (both present), route.models.singleModality (one of them; also the fallback)
 *   makes   SEG (ischaemic lesion), TID 1500 SR (lesion volume, ADC < 620 core where valid), optional overlay SC
 * Behaviour as before tasks existed: the decision is route.ts's decideRoute, the pipeline the former processor.
 */
import type { Volume } from '../../types';
import { coreMeasurement, deployment, modelUse, provenanceOf, segmentLesion, writeLesionResults } from '../common';
import { postprocessLesionMask } from '../lesion-postprocess';
import { decideRoute } from '../route';
import type { Task } from '../task';

export interface StrokeMrPlan {
  model: string;
  inputs: ('DWI' | 'ADC')[];
  note?: string;
}

export const strokeMr: Task<StrokeMrPlan> = {
  id: 'stroke-mr',
  title: 'Acute stroke on MR: ischaemic lesion on DWI/ADC',
  needs: 'a usable DWI or ADC series',
  models: (route) => [route.models.dwiAdc, route.models.singleModality],
  contentDefault: {
    competesWith: ['brain-tumour-mr'],
    holds: (av) => av.available.DWI || av.available.ADC,
    description: 'DWI or ADC present',
  },
  accept(av, route, registry) {
    if (!av.available.DWI && !av.available.ADC) return { run: false, reason: 'no usable DWI or ADC series', inputsMissing: true };
    const d = decideRoute(av, route, registry);
    if (d.kind === 'lesion') return { run: true, plan: { model: d.model, inputs: d.inputs, note: d.note }, note: d.note };
    return { run: false, reason: d.kind === 'none' ? d.reason : 'not a diffusion study' };
  },
  async run({ deps, route, study, plan, timings, tStart }) {
    const { config, registry } = deps;
    const model = registry.get(plan.model)!;
    const { ref: refVol, mask: modelMask } = await segmentLesion(registry, plan.model, { DWI: study.volumes.DWI, ADC: study.volumes.ADC }, timings);
    // False-positive control that follows the physics (brain mask, minimum size, restricted diffusion per component)
    let t = performance.now();
    const pp = postprocessLesionMask(modelMask, { ref: refVol, dwi: study.volumes.DWI, b0: study.volumes.DWI_B0, adc: study.volumes.ADC }, config.lesionPostprocess);
    const mask = pp.mask;
    timings.lesionPostprocess = performance.now() - t;

    t = performance.now();
    const sources = [study.volumes.DWI, study.volumes.ADC].filter((v): v is Volume => !!v);
    const provenance = { ...provenanceOf(deps, model, [...new Set(sources.map((v) => v.seriesInstanceUid))], tStart, false), postprocessing: pp.report.summary };
    const dep = deployment(config, deps.nodeVersion);
    const seriesBase = config.output.seriesNumberBase;
    const { core, coreNote } = coreMeasurement(study.volumes.ADC, study.volumes.DWI, refVol, mask);
    const wantOverlay = config.destinations.some((d) => route.destinations.includes(d.name) && d.overlaySc);
    const { seg, sr, overlay, lesionMl } = writeLesionResults({
      ref: refVol,
      mask,
      headers: study.headers,
      model,
      provenance,
      deployment: dep,
      seriesBase,
      core,
      coreNote,
      overlay: wantOverlay,
    });
    timings.encode = (timings.encode ?? 0) + performance.now() - t;

    const lesionVolumeMl = Math.round(lesionMl * 100) / 100;
    const coreVolumeMl = core ? Math.round(core.volumeMl * 100) / 100 : undefined;
    return {
      objects: [
        { kind: 'SEG', part10: seg.part10, sop: seg.sopInstanceUid, series: seg.seriesInstanceUid },
        { kind: 'SR', part10: sr.part10, sop: sr.sopInstanceUid, series: sr.seriesInstanceUid },
        ...(overlay?.instances ?? []).map((i) => ({ kind: 'OVERLAY', part10: i.part10, sop: i.sopInstanceUid, series: overlay!.seriesInstanceUid, overlayOnly: true })),
      ],
      measurements: { lesionVolumeMl, coreVolumeMl },
      notes: [coreNote, pp.report.summary, plan.note].filter((x): x is string => !!x),
      models: [modelUse(model)],
      outcome: {
        decision: 'lesion',
        model: { ...modelUse(model), executionProvider: provenance.executionProvider },
        lesionVolumeMl,
        coreVolumeMl,
        coreNote,
        postprocessing: pp.report.summary,
        note: plan.note,
      },
    };
  },
};
