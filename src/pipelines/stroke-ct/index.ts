/**
 * Task stroke-ct: acute stroke on a non-contrast head CT alone.
 *   needs   a usable head CT series, and no DWI/ADC (a study with diffusion is stroke-mr's)
 *   models  route.models.ctToDwi (CT → synthetic DWI), then the lesion model (ctLesion, else singleModality, else dwiAdc)
 *   makes   SYNTHETIC DWI Secondary Capture series, a SEG referencing it, the measurement SR, optional overlay SC
 * Brain mask from the CT → synthetic DWI (ct2dwi) on the CT grid → Secondary Capture series (SYNTHETIC, banner,
 * CT slices referenced) → the lesion model on the synthetic DWI (DWI only) → a SEG that references the synthetic
 * SC instances and says it was derived from a synthetic image → the measurement SR.
 */
import { writeSyntheticSc } from '../../results';
import { deployment, modelUse, provenanceOf, segmentLesion, writeLesionResults } from '../common';
import { decideRoute } from '../route';
import { synthesiseDwi } from '../synthesis';
import type { Task } from '../task';

export interface StrokeCtPlan {
  synthesisModel: string;
  lesionModel: string;
  note?: string;
}

export const strokeCt: Task<StrokeCtPlan> = {
  id: 'stroke-ct',
  title: 'Acute stroke on CT: lesion on a synthetic DWI made from the CT',
  needs: 'a usable head CT series and no DWI/ADC',
  models: (route) => [route.models.ctToDwi, route.models.ctLesion, route.models.singleModality, route.models.dwiAdc],
  accept(av, route, registry) {
    if (!av.available.CT) return { run: false, reason: 'no usable head CT series', inputsMissing: true };
    if (av.available.DWI || av.available.ADC) return { run: false, reason: 'the study has DWI/ADC: the CT-only synthesis path is not used (stroke-mr reads the acquired diffusion)' };
    const d = decideRoute(av, route, registry);
    if (d.kind === 'ct-synthesis') return { run: true, plan: { synthesisModel: d.synthesisModel, lesionModel: d.lesionModel, note: d.note } };
    return { run: false, reason: d.kind === 'none' ? d.reason : 'not a CT-only study' };
  },
  async run({ deps, route, study, plan, timings, tStart }) {
    const { config, registry } = deps;
    const ct = study.volumes.CT;
    if (!ct) throw new Error('CT task chosen but no CT volume was assembled');
    const synthModel = registry.get(plan.synthesisModel)!;
    const lesionModel = registry.get(plan.lesionModel)!;
    const synth = await synthesiseDwi(registry, plan.synthesisModel, ct, timings);

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
    const { mask } = await segmentLesion(registry, plan.lesionModel, { DWI: sc.volume }, timings);
    t = performance.now();
    const provenance = provenanceOf(deps, lesionModel, [sc.seriesInstanceUid, ct.seriesInstanceUid], tStart, true);
    const wantOverlay = config.destinations.some((d) => route.destinations.includes(d.name) && d.overlaySc);
    const { seg, sr, overlay, lesionMl } = writeLesionResults({
      ref: sc.volume,
      mask,
      headers: sc.headers,
      model: lesionModel,
      provenance,
      deployment: dep,
      seriesBase,
      overlay: wantOverlay,
    });
    timings.encode = (timings.encode ?? 0) + performance.now() - t;

    const lesionVolumeMl = Math.round(lesionMl * 100) / 100;
    const note = [`CT only: lesion segmented on a SYNTHETIC DWI made by ${synthModel.manifest.name} from the CT`, plan.note].filter(Boolean).join('; ');
    return {
      objects: [
        ...sc.instances.map((i) => ({ kind: 'SYNTHETIC_DWI', part10: i.part10, sop: i.sopInstanceUid, series: sc.seriesInstanceUid })),
        { kind: 'SEG', part10: seg.part10, sop: seg.sopInstanceUid, series: seg.seriesInstanceUid },
        { kind: 'SR', part10: sr.part10, sop: sr.sopInstanceUid, series: sr.seriesInstanceUid },
        ...(overlay?.instances ?? []).map((i) => ({ kind: 'OVERLAY', part10: i.part10, sop: i.sopInstanceUid, series: overlay!.seriesInstanceUid, overlayOnly: true })),
      ],
      measurements: { lesionVolumeMl },
      notes: [note],
      models: [modelUse(lesionModel), modelUse(synthModel)],
      outcome: { decision: 'ct-synthesis', model: modelUse(lesionModel), synthesisModel: modelUse(synthModel), lesionVolumeMl, note },
    };
  },
};
