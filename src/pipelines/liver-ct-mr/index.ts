/**
 * Task liver-ct-mr: the liver and its tumours on an abdominal CT or MRI, one model for both (issue 16, A-QCF-Net).
 *   needs   a usable abdominal CT (portal-venous, arterial, non-contrast or delayed) or abdominal MRI (T1 post-contrast,
 *           T2, T1) series: axial, CT <= 5 mm / MRI <= 8 mm slices (src/study/abdomen.ts, with the reason for every
 *           series); a head or chest-only study is not accepted
 *   picks   CT before MR; CT portal-venous > arterial > non-contrast > delayed; MRI T1 post-contrast > T2 > T1; then
 *           the thinnest slices, then the most slices (the outcome says why)
 *   models  route.models.liver (default liver-aqcf; manifest task liver-tumour-segmentation)
 *   makes   a two-segment SEG (liver, liver tumour) on the picked series' own slices and a TID 1500 SR (liver volume,
 *           number of tumours, each tumour's volume, longest axial diameter and centroid; no Couinaud segment)
 *
 * The pipeline is segment.ts (segmentLiver: one in-memory Volume in, labels and measurements out; benches call it
 * directly) and measure.ts (post-processing, measurements); results/liver.ts encodes.
 */
import type { ModelManifest } from '../../models/manifest';
import { writeLiverResults } from '../../results/liver';
import type { AbdomenKind } from '../../types';
import { ABDOMEN_KIND_TEXT } from '../../study/abdomen';
import { deployment, modelUse, provenanceOf } from '../common';
import type { Task } from '../task';
import { segmentLiver } from './segment';

export { segmentLiver, liverModelInput, mrMedianNormalise, type LiverSegmentation, type LiverModality } from './segment';
export { postprocessLiver, measureLiver, type LiverMeasurements, type TumourMeasurement } from './measure';

export interface LiverPlan {
  model: string;
  /** The picked series; absent when only the content kinds are known (the rule tester's "present" list). */
  seriesInstanceUid?: string;
  modality: 'CT' | 'MR';
  kind?: AbdomenKind;
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

/**
 * The caveat every liver result carries while the model is phantom-trained (its manifest's description or training
 * data says "phantom"): no real liver-tumour data was used, so its numbers are not validated on patients.
 */
export function phantomCaveat(m: ModelManifest): string | undefined {
  const training = (m as unknown as { training?: { data?: unknown } }).training;
  const said = `${m.description ?? ''} ${typeof training?.data === 'string' ? training.data : JSON.stringify(training?.data ?? '')}`;
  return /phantom/i.test(said)
    ? `PHANTOM-TRAINED MODEL: ${m.name} ${m.version} was trained on synthetic phantoms built on one real abdominal CT, not on patients' liver tumours; its volumes, tumour count and diameters are not validated on patient data (models/README.md).`
    : undefined;
}

export const liverCtMr: Task<LiverPlan> = {
  id: 'liver-ct-mr',
  title: 'Liver and liver tumours on abdominal CT or MRI (one model for both)',
  needs: 'a usable abdominal CT (portal-venous, arterial or non-contrast) or abdominal MRI (T1 post-contrast, T2, T1) series: axial, CT <= 5 mm, MRI <= 8 mm slices',
  models: (route) => [route.models.liver],
  accept(av, route, registry) {
    const abd = av.abdomen;
    const pick = abd?.pick;
    const a = av.available as Partial<Record<'CT_ABDOMEN' | 'MR_ABDOMEN', boolean>>;
    if (!pick && !abd && (a.CT_ABDOMEN || a.MR_ABDOMEN)) {
      // only the content kinds are known (rule tester, an outcome without the series record): the series is picked at assembly
      if (!registry.isReady(route.models.liver)) return { run: false, reason: `liver model "${route.models.liver}" is not installed or not ready` };
      return { run: true, plan: { model: route.models.liver, modality: a.CT_ABDOMEN ? 'CT' : 'MR' }, note: `an abdominal ${a.CT_ABDOMEN ? 'CT' : 'MRI'} series is present (the series is picked when the study is assembled)` };
    }
    if (!pick) {
      const seen = (abd?.series ?? []).filter((s) => s.modality === 'CT' || s.modality === 'MR');
      const why = seen.length ? seen.slice(0, 3).map((s) => `"${s.seriesDescription ?? s.seriesInstanceUid.slice(-8)}": ${s.reason}`).join('; ') : 'no CT or MR series';
      return { run: false, reason: `no usable abdominal CT or MRI series (${why}${seen.length > 3 ? `; +${seen.length - 3} more` : ''})`, inputsMissing: true };
    }
    const model = route.models.liver;
    if (!registry.isReady(model)) return { run: false, reason: `liver model "${model}" is not installed or not ready (series: ${pick.reason})` };
    return { run: true, plan: { model, seriesInstanceUid: pick.seriesInstanceUid, modality: pick.modality, kind: pick.kind }, note: pick.reason };
  },
  async run({ deps, study, plan, timings, tStart }) {
    const { config, registry } = deps;
    const model = registry.get(plan.model);
    if (!model) throw new Error(`model ${plan.model} missing`);
    if (!study.abdomen || (plan.seriesInstanceUid && study.abdomen.pick.seriesInstanceUid !== plan.seriesInstanceUid)) throw new Error('the planned abdominal series is not in the assembled study');
    const kind = study.abdomen.pick.kind;
    const modality = study.abdomen.pick.modality;
    let t = performance.now();
    const volume = await study.abdomen.load();
    timings.load = (timings.load ?? 0) + performance.now() - t;
    const seg = await segmentLiver(registry, plan.model, volume, modality, timings);
    const m = seg.measurements;
    const caveat = phantomCaveat(model.manifest);
    const provenance = { ...provenanceOf(deps, model, [volume.seriesInstanceUid], tStart, false), postprocessing: `Post-processing: ${seg.postprocessing}.` };
    const seriesKind = ABDOMEN_KIND_TEXT[kind];
    t = performance.now();
    const base = config.output.seriesNumberBase;
    const res = writeLiverResults({
      source: volume,
      labels: seg.labels,
      sourceHeaders: study.headers,
      modality,
      seriesKind,
      liverMl: m.liverMl,
      tumourMl: m.tumourMl,
      tumours: m.tumours,
      notes: [caveat ?? '', `Series picked: ${study.abdomen.pick.reason}.`, ...seg.notes].filter(Boolean),
      algorithmName: model.manifest.name,
      algorithmVersion: model.manifest.version,
      provenance,
      deployment: deployment(config, deps.nodeVersion),
      options: { seg: { seriesNumber: base + 21 }, sr: { seriesNumber: base + 22 } },
    });
    timings.encode = (timings.encode ?? 0) + performance.now() - t;
    const largest = m.tumours[0];
    const measurements = {
      liverMl: r2(m.liverMl),
      tumourCount: m.tumourCount,
      tumourMl: r2(m.tumourMl),
      largestTumourMl: largest ? r2(largest.ml) : undefined,
      largestTumourDiameterMm: largest ? r2(largest.longestAxialDiameterMm) : undefined,
    };
    const note = [
      `${seriesKind}: liver ${r2(m.liverMl)} mL, ${m.tumourCount} tumour(s)${m.tumourCount ? ` (${m.tumours.map((x) => `${r2(x.ml)} mL / ${x.longestAxialDiameterMm.toFixed(1)} mm`).join(', ')})` : ''}`,
      caveat,
    ]
      .filter(Boolean)
      .join('; ');
    return {
      objects: [
        { kind: 'SEG', part10: res.seg.part10, sop: res.seg.sopInstanceUid, series: res.seg.seriesInstanceUid },
        { kind: 'SR', part10: res.sr.part10, sop: res.sr.sopInstanceUid, series: res.sr.seriesInstanceUid },
      ],
      measurements,
      notes: [note, `post-processing: ${seg.postprocessing}`, ...seg.notes],
      models: [modelUse(model)],
      outcome: { decision: 'liver', model: { ...modelUse(model), executionProvider: provenance.executionProvider }, note, postprocessing: seg.postprocessing },
    };
  },
};
