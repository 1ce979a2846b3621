/**
 * Task brain-tumour-mr: brain tumour sub-regions (necrotic / non-enhancing core, oedema, enhancing tumour)
 * from whatever subset of FLAIR, T1, T1 post-contrast (T1C) and T2 the study carries (issue 14).
 *   needs   at least one usable FLAIR, T1, T1C or T2 series
 *   models  route.models.brainTumour (default brats-shaspec: any subset, modality-mask input); a site may
 *           name brats-unet4 (its manifest's inputs.required: all four): it is used only when all four are
 *           present, else brats-shaspec when ready (the outcome says so), else the task does not run
 *   makes   a three-segment DICOM SEG on the reference series' own slices and a TID 1500 SR with the volume
 *           of each sub-region, whole tumour and tumour core, and the sequences present / missing
 *
 * Pipeline (models/README.md, "brain-tumour model contract"):
 *   1. grid       the available sequences onto one reference series by patient coordinates (src/study/grid.ts;
 *                 another FrameOfReferenceUID is left out with the reason)
 *   2. brainMask  a brain mask on that grid (brain-mask.ts; BraTS-like skull-stripped input recognised)
 *   3. preprocess per sequence `zscore-brain` (mean/std over the mask voxels of the 3-D volume, clip, 0 outside
 *                 the mask); each reference slice resampled in-plane to the model grid (toModelGrid: 128 x 128
 *                 at 1.875 mm centred on the slice); a missing sequence is a zero channel and 0 in modality_mask
 *   4. inference  ONNX `input` [N,4,H,W] + `modality_mask` [N,4] → `logits` [N,4,H,W]
 *   5. postprocess softmax, each class probability back onto the reference slices (fromModelGrid, bilinear),
 *                 argmax → labels 0..3, 0 outside the brain mask
 *   6. encode     writeTumourResults (results/tumour.ts)
 *   5b. issue 15  between 5 and 6: synthetic missing sequences (brats-m2dn, DDIM) and one fused series (brats-nslf) as
 *                 labelled SC series, within brainTumour.synthesis.budgetSeconds; with segmentWith with-synthesis the
 *                 labels come from the acquired + synthesised inputs (synthetic-series.ts, synthesis.ts, fusion.ts)
 */
import type { Route } from '../../config/schema';
import type { LoadedModel, ModelRegistry } from '../../models/registry';
import { requiredModalities, type ModelManifest } from '../../models/manifest';
import { writeTumourResults } from '../../results/tumour';
import { fromModelGrid, toModelGrid, type ModelGrid } from '../../study';
import { commonGrid, type CommonGrid } from '../../study/grid';
import type { Volume } from '../../types';
import { deployment, modelUse, provenanceOf } from '../common';
import type { Task } from '../task';
import { brainMaskMr, type BrainMaskResult } from './brain-mask';
import { synthesisStage } from './synthetic-series';

export const TUMOUR_SEQUENCES = ['FLAIR', 'T1', 'T1C', 'T2'] as const;
export type TumourSequence = (typeof TUMOUR_SEQUENCES)[number];
/** The any-subset model a route falls back to when the model it names needs a sequence the study lacks. */
export const FALLBACK_TUMOUR_MODEL = 'brats-shaspec';

export interface BrainTumourPlan {
  model: string;
  /** The sequences present (the model's modality mask); the others are missing and the model does without. */
  present: TumourSequence[];
  missing: TumourSequence[];
  /** Set when the route's model needed a missing sequence and FALLBACK_TUMOUR_MODEL runs instead. */
  fallbackFrom?: string;
}

type RegistryView = Pick<ModelRegistry, 'isReady'> & Partial<Pick<ModelRegistry, 'get'>>;

/** A manifest modality name ("T1c", "flair") as the node's sequence kind ("T1C", "FLAIR"), or undefined. */
export function sequenceOf(modality: string): TumourSequence | undefined {
  const u = modality.toUpperCase();
  return (TUMOUR_SEQUENCES as readonly string[]).includes(u) ? (u as TumourSequence) : undefined;
}

/** The sequences a model needs all of (manifest inputs.required), as node kinds. */
function requiredOf(registry: RegistryView, model: string): TumourSequence[] {
  const m = registry.get?.(model)?.manifest;
  if (!m) return [];
  return requiredModalities(m)
    .map(sequenceOf)
    .filter((x): x is TumourSequence => !!x);
}

/** Which model runs on these sequences on this route, or why none. */
export function chooseTumourModel(present: TumourSequence[], route: Route, registry: RegistryView): { model: string; fallbackFrom?: string; note?: string } | { reason: string } {
  const named = route.models.brainTumour;
  const lacking = (model: string) => requiredOf(registry, model).filter((q) => !present.includes(q));
  if (!registry.isReady(named)) return { reason: `brain tumour model "${named}" is not installed or not ready (sequences present: ${present.join(', ')})` };
  const lack = lacking(named);
  if (!lack.length) return { model: named };
  const why = `route model "${named}" needs all of ${requiredOf(registry, named).join(', ')} and the study lacks ${lack.join(', ')}`;
  if (named !== FALLBACK_TUMOUR_MODEL && registry.isReady(FALLBACK_TUMOUR_MODEL) && !lacking(FALLBACK_TUMOUR_MODEL).length) {
    return { model: FALLBACK_TUMOUR_MODEL, fallbackFrom: named, note: `${why}: ${FALLBACK_TUMOUR_MODEL} (any subset) runs instead` };
  }
  return { reason: `${why}, and the any-subset model "${FALLBACK_TUMOUR_MODEL}" is not ready` };
}

/**
 * `zscore-brain`: mean and std over the brain-mask voxels of the volume; x = clip((v - mean) / std) inside the
 * mask, 0 outside. A constant (or empty) sequence gives 0 everywhere.
 */
export function zscoreBrain(data: Float32Array, mask: Uint8Array, clip: [number, number]): Float32Array {
  let n = 0;
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < data.length; i++) {
    if (!mask[i]) continue;
    const v = data[i];
    n++;
    s += v;
    s2 += v * v;
  }
  const out = new Float32Array(data.length);
  if (n < 2) return out;
  const mean = s / n;
  const std = Math.sqrt(Math.max(0, s2 / n - mean * mean));
  if (!(std > 0)) return out;
  const [lo, hi] = clip;
  const inv = 1 / std;
  for (let i = 0; i < data.length; i++) {
    if (!mask[i]) continue;
    const x = (data[i] - mean) * inv;
    out[i] = x < lo ? lo : x > hi ? hi : x;
  }
  return out;
}

export interface TumourSegmentation {
  grid: CommonGrid;
  /** The reference series as a Volume (its geometry, slices and pixel data). */
  reference: Volume;
  brainMask: BrainMaskResult;
  /** 0 background, 1 necrotic / non-enhancing core, 2 oedema, 3 enhancing, on the reference grid. */
  labels: Uint8Array;
  /** Sequences given to the model / missing (after the common grid: a refused sequence is missing). */
  present: TumourSequence[];
  missing: TumourSequence[];
  notes: string[];
}

/** Slices per ONNX call (bounds the memory of one call; the result does not depend on it). */
const BATCH = 16;

/**
 * Steps 1-5 of the file comment: the label volume on the reference series' grid. Stage times (ms) are added
 * to `timings`: grid, brainMask, preprocess, inference, postprocess.
 */
export async function segmentTumour(
  registry: Pick<ModelRegistry, 'get' | 'run'>,
  modelName: string,
  volumes: Partial<Record<TumourSequence, Volume | undefined>>,
  timings: Record<string, number>,
): Promise<TumourSegmentation> {
  const entry = registry.get(modelName);
  if (!entry?.manifest) throw new Error(`model ${modelName} missing`);
  const m: ModelManifest = entry.manifest;
  const add = (k: string, t0: number) => (timings[k] = (timings[k] ?? 0) + performance.now() - t0);

  let t = performance.now();
  const grid = commonGrid(volumes);
  add('grid', t);
  const present = TUMOUR_SEQUENCES.filter((q) => grid.volumes[q]);
  const missing = TUMOUR_SEQUENCES.filter((q) => !present.includes(q));
  const lack = requiredModalities(m)
    .map(sequenceOf)
    .filter((q): q is TumourSequence => !!q && !present.includes(q));
  if (lack.length) throw new Error(`model ${modelName} needs ${lack.join(', ')}, not on the common grid (${grid.refused.map((r) => r.reason).join('; ') || 'absent'})`);
  const g = grid.geometry;
  const refVol = volumes[grid.reference]!;
  const reference: Volume = { ...refVol, geometry: g, sliceSources: grid.sliceSources };

  t = performance.now();
  const brainMask = brainMaskMr(
    present.map((q) => grid.volumes[q]!),
    g,
  );
  add('brainMask', t);

  // 3. normalisation, model grid, channels and modality mask
  t = performance.now();
  const mg: ModelGrid = { size: m.inputs.grid.size, spacingMm: m.inputs.grid.spacingMm };
  const [H, W] = mg.size;
  const plane = H * W;
  const S = g.slices;
  const channels = m.inputs.channels.map((c) => ({ modality: c.modality, seq: sequenceOf(c.modality) }));
  const C = channels.length;
  const onModel = new Map<TumourSequence, Float32Array>();
  for (const q of present) {
    const ch = channels.find((c) => c.seq === q);
    if (!ch) continue; // a model that does not read this sequence
    const spec = m.inputs.normalisation[ch.modality];
    if (!spec || spec.method !== 'zscore-brain') throw new Error(`model ${modelName}: normalisation of ${ch.modality} is ${spec?.method ?? 'missing'}, the tumour task applies zscore-brain`);
    const z = zscoreBrain(grid.volumes[q]!, brainMask.mask, spec.clip);
    onModel.set(q, toModelGrid({ ...reference, data: z }, mg).data);
  }
  const maskOrder = (m.inputs.modalityMaskOrder as string[] | undefined) ?? [...new Set(channels.map((c) => c.modality))];
  const maskRow = maskOrder.map((mod) => {
    const q = sequenceOf(mod);
    return q && onModel.has(q) ? 1 : 0;
  });
  add('preprocess', t);

  // 4. inference, batches of slices
  const outName = m.outputs.tensor;
  const probs = new Float32Array(S * C * plane);
  let nClasses = 0;
  for (let z0 = 0; z0 < S; z0 += BATCH) {
    t = performance.now();
    const n = Math.min(BATCH, S - z0);
    const input = new Float32Array(n * C * plane);
    for (let k = 0; k < n; k++) {
      channels.forEach((ch, ci) => {
        const src = ch.seq ? onModel.get(ch.seq) : undefined;
        if (src) input.set(src.subarray((z0 + k) * plane, (z0 + k + 1) * plane), (k * C + ci) * plane);
      });
    }
    const feeds: Record<string, { data: Float32Array; dims: number[] }> = { [m.inputs.tensor]: { data: input, dims: [n, C, H, W] } };
    if (m.inputs.modalityMaskTensor) {
      const mm = new Float32Array(n * maskRow.length);
      for (let k = 0; k < n; k++) mm.set(maskRow, k * maskRow.length);
      feeds[m.inputs.modalityMaskTensor] = { data: mm, dims: [n, maskRow.length] };
    }
    const out = await registry.run(modelName, feeds);
    add('inference', t);
    t = performance.now();
    const logits = out[outName];
    if (!logits) throw new Error(`model ${modelName} returned no "${outName}" output`);
    nClasses = logits.dims[1];
    if (logits.dims.length !== 4 || logits.dims[0] !== n || logits.dims[2] !== H || logits.dims[3] !== W || nClasses < 2) {
      throw new Error(`model ${modelName}: "${outName}" has shape [${logits.dims.join(', ')}], expected [${n}, classes, ${H}, ${W}]`);
    }
    // softmax over the class axis, written class-major: probs[(class * S + z) * plane + p]
    const d = logits.data;
    const e = new Float64Array(nClasses);
    for (let k = 0; k < n; k++) {
      const base = k * nClasses * plane;
      for (let p = 0; p < plane; p++) {
        let mx = -Infinity;
        for (let c = 0; c < nClasses; c++) mx = Math.max(mx, d[base + c * plane + p]);
        let sum = 0;
        for (let c = 0; c < nClasses; c++) sum += e[c] = Math.exp(d[base + c * plane + p] - mx);
        for (let c = 0; c < nClasses; c++) probs[(c * S + z0 + k) * plane + p] = e[c] / sum;
      }
    }
    add('postprocess', t);
  }

  // 5. each class back onto the reference slices (bilinear), argmax, brain mask
  t = performance.now();
  const nv = S * g.rows * g.columns;
  const best = new Float32Array(nv).fill(-1);
  const labels = new Uint8Array(nv);
  for (let c = 0; c < nClasses; c++) {
    const onSrc = fromModelGrid(probs.subarray(c * S * plane, (c + 1) * S * plane), g, mg);
    for (let i = 0; i < nv; i++) {
      if (onSrc[i] > best[i]) {
        best[i] = onSrc[i];
        labels[i] = c;
      }
    }
  }
  for (let i = 0; i < nv; i++) if (!brainMask.mask[i] || labels[i] > 3) labels[i] = 0;
  add('postprocess', t);

  const notes = [
    ...grid.notes,
    ...grid.refused.map((r) => `left out: ${r.reason}`),
    brainMask.notes[brainMask.notes.length - 1] ?? '',
    `model ${modelName}: modality_mask ${maskOrder.map((mod, i) => `${mod}=${maskRow[i]}`).join(' ')}`,
  ].filter(Boolean);
  return { grid, reference, brainMask, labels, present, missing, notes };
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

/** The manifest's own test-split enhancing-tumour Dice with all four sequences (metrics['1mm']['FLAIR+T1+T1c+T2'].ET.dice), if it states one. */
export function testSplitEtDice(m: ModelManifest): number | undefined {
  const metrics = (m as unknown as { metrics?: Record<string, Record<string, { ET?: { dice?: unknown } }>> }).metrics;
  const d = metrics?.['1mm']?.['FLAIR+T1+T1c+T2']?.ET?.dice;
  return typeof d === 'number' ? d : undefined;
}

/** Below this test-split ET Dice the outcome says the model's enhancing tumour is not reliable. */
export const ET_RELIABLE_DICE = 0.2;

/** The outcome's caveat on enhancing tumour: present iff the manifest states a test-split ET Dice below ET_RELIABLE_DICE. */
export function enhancingTumourCaveat(m: ModelManifest): string | undefined {
  const etDice = testSplitEtDice(m);
  return etDice !== undefined && etDice < ET_RELIABLE_DICE
    ? `enhancing tumour from ${m.name} ${m.version} is not reliable (test-split ET Dice ${etDice.toFixed(2)} with all four sequences: models/README.md)`
    : undefined;
}

/**
 * Enhancement is defined against a post-contrast T1: without an acquired T1C the model's "enhancing" voxels are a
 * guess from the other contrasts (brats-shaspec 0.2.0 TEST ET Dice 0.2-26 % without T1c, 45-49 % with it, and
 * 45 mL "enhancing" on the FLAIR-only test case against 31 mL with all four). With `count-as-core` they go into
 * the necrotic / non-enhancing core label (tumour core and whole tumour unchanged) and the note says how much.
 */
export function enhancingWithoutT1c(
  labels: Uint8Array,
  acquired: readonly TumourSequence[],
  mode: 'count-as-core' | 'report',
  voxelMl: number,
): { labels: Uint8Array; note?: string } {
  if (acquired.includes('T1C')) return { labels };
  let n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === 3) n++;
  if (mode === 'report') {
    return { labels, note: `no acquired post-contrast T1: the ${r2(n * voxelMl)} mL of enhancing tumour is the model's guess from the other sequences, not seen enhancement` };
  }
  const out = labels.slice();
  for (let i = 0; i < out.length; i++) if (out[i] === 3) out[i] = 1;
  return {
    labels: out,
    note: `enhancing tumour not assessed: no acquired post-contrast T1${n ? `; the ${r2(n * voxelMl)} mL the model called enhancing is counted in the tumour core` : ''}`,
  };
}

export const brainTumourMr: Task<BrainTumourPlan> = {
  id: 'brain-tumour-mr',
  title: 'Brain tumour on MR: enhancing tumour, tumour core and oedema from any subset of FLAIR, T1, T1C, T2',
  needs: 'at least one usable FLAIR, T1, T1C or T2 series',
  models: (route) => [...new Set([route.models.brainTumour, FALLBACK_TUMOUR_MODEL])],
  contentDefault: {
    competesWith: ['stroke-mr'],
    holds: (av) => Boolean(av.available.T1C),
    description: 'a post-contrast T1 (T1C) present',
  },
  accept(av, route, registry) {
    // Read defensively: the availability record of an older outcome (or a study stage without these fields) lacks them.
    const a = av.available as Partial<Record<TumourSequence, boolean>>;
    const present = TUMOUR_SEQUENCES.filter((k) => a[k] === true);
    if (!present.length) return { run: false, reason: 'no usable FLAIR, T1, T1C or T2 series', inputsMissing: true };
    const choice = chooseTumourModel(present, route, registry as RegistryView);
    if ('reason' in choice) return { run: false, reason: choice.reason };
    const missing = TUMOUR_SEQUENCES.filter((k) => !present.includes(k));
    const note = [missing.length ? `without ${missing.join(', ')}` : undefined, choice.note].filter(Boolean).join('; ') || undefined;
    return { run: true, plan: { model: choice.model, present, missing, ...(choice.fallbackFrom ? { fallbackFrom: choice.fallbackFrom } : {}) }, note };
  },
  async run({ deps, study, plan, timings, tStart }) {
    const { config, registry } = deps;
    const model: LoadedModel | undefined = registry.get(plan.model);
    if (!model) throw new Error(`model ${plan.model} missing`);
    const vols: Partial<Record<TumourSequence, Volume>> = {};
    for (const q of plan.present) if (study.volumes[q]) vols[q] = study.volumes[q];
    const seg = await segmentTumour(registry, plan.model, vols, timings);
    // issue 15: synthetic missing sequences + one fused series (synthetic-series.ts; within the time budget, never fails the study)
    const extra = await synthesisStage({ deps, headers: study.headers, seg, vols, segModel: plan.model, timings, tStart });
    const synthesised = extra.synthesised;

    const voxelMl = (seg.reference.geometry.pixelSpacing[0] * seg.reference.geometry.pixelSpacing[1] * seg.reference.geometry.sliceSpacing) / 1000;
    const et = enhancingWithoutT1c(extra.labels ?? seg.labels, seg.present, config.brainTumour.enhancingWithoutT1c, voxelMl);
    const t = performance.now();
    const sourceSeries = seg.present.map((q) => vols[q]!.seriesInstanceUid);
    const provenance = provenanceOf(deps, model, [...new Set(sourceSeries)], tStart, false);
    const base = config.output.seriesNumberBase;
    const res = writeTumourResults({
      source: seg.reference,
      labels: et.labels,
      sourceHeaders: study.headers,
      sequences: {
        present: [...seg.present, ...synthesised],
        missing: seg.missing.filter((q) => !synthesised.includes(q)),
        synthesised,
        seriesUids: Object.fromEntries(seg.present.map((q) => [q, vols[q]!.seriesInstanceUid])),
      },
      notes: et.note ? [et.note, ...extra.notes] : extra.notes,
      algorithmName: model.manifest.name,
      algorithmVersion: model.manifest.version,
      provenance,
      deployment: deployment(config, deps.nodeVersion),
      options: { seg: { seriesNumber: base + 11 }, sr: { seriesNumber: base + 12 } },
    });
    timings.encode = (timings.encode ?? 0) + performance.now() - t;

    const v = res.volumes;
    const measurements = {
      wholeTumourMl: r2(v.wholeTumour),
      tumourCoreMl: r2(v.tumourCore),
      enhancingTumourMl: r2(v.enhancing),
      necroticCoreMl: r2(v.core),
      oedemaMl: r2(v.oedema),
      brainMaskMl: r2(seg.brainMask.volumeMl),
    };
    const seqNote = `sequences present ${seg.present.join(', ')}${seg.missing.length ? `; missing ${seg.missing.join(', ')} (${synthesised.length ? `synthesised ${synthesised.join(', ')} given to the model` : 'the model did without'})` : ''}; reference ${seg.grid.reference}`;
    const fallback = plan.fallbackFrom ? `route model ${plan.fallbackFrom} needs all four sequences: ${plan.model} ran instead` : undefined;
    const etCaveat = enhancingTumourCaveat(model.manifest);
    const note = [seqNote, fallback, etCaveat, et.note].filter(Boolean).join('; ');
    return {
      objects: [
        { kind: 'SEG', part10: res.seg.part10, sop: res.seg.sopInstanceUid, series: res.seg.seriesInstanceUid },
        { kind: 'SR', part10: res.sr.part10, sop: res.sr.sopInstanceUid, series: res.sr.seriesInstanceUid },
        ...extra.objects,
      ],
      measurements,
      notes: [note, ...seg.notes, ...extra.notes],
      models: [modelUse(model), ...extra.models],
      outcome: {
        decision: 'brain-tumour',
        model: { ...modelUse(model), executionProvider: provenance.executionProvider },
        note,
        synthesis: { ...extra.synthesis, totalMs: extra.totalMs },
        fusion: extra.fusion,
      },
    };
  },
};
