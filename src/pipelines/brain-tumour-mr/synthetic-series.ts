/**
 * Issue 15 stage of the brain-tumour task: synthetic missing sequences (brats-m2dn, DDIM: synthesis.ts) and one
 * fused series of the acquired sequences (brats-nslf: fusion.ts), sent as labelled SC series
 * (results/synthetic-mr.ts), inside the per-study time budget of `brainTumour.synthesis.budgetSeconds`.
 *
 * Runs after the acquired-only segmentation (segmentTumour: it gives the common grid, the brain mask and the
 * reference series). Per study:
 *   1. inputs    each acquired sequence `zscore-brain` over the brain mask, on the synthesis model's grid
 *                (128 x 128 at 1.875 mm, the same toModelGrid as the segmentation); brain mask on that grid (> 0.5)
 *   2. synthesis when sequences are missing and the model is ready: DDIM over every slice of the study (seeded
 *                noise, `steps` or the manifest default), each missing channel back onto the reference slices
 *                (fromModelGrid, bilinear), times the brain mask → writeSyntheticSequence, one series per sequence
 *   3. segmentWith  with-synthesis: the segmentation model runs again on the acquired + synthesised channels
 *                (modality mask all ones for those), its labels replace the acquired-only ones and the SR lists
 *                the sequences as synthesised; acquired-only: the acquired-only labels stay. `measured` (default)
 *                takes the route the synthesis manifest's metrics.downstream.bestRoute names (BraTS TEST split)
 *   4. fusion    the acquired channels through brats-nslf → writeFusedSeries (fused from the acquired only)
 *   The budget starts at step 1 and is checked before every ONNX call and before each series is encoded; past it
 *   the stage stops, nothing of the unfinished step is sent, the SEG/SR go out (acquired-only labels) and the
 *   outcome and the SR say what was not sent and why. Any other failure of this stage is a note, never a failed
 *   study: the SEG/SR do not depend on it.
 */
import type { ModelManifest } from '../../models/manifest';
import type { LoadedModel } from '../../models/registry';
import { writeFusedSeries, writeSyntheticSequence, type AcquiredSource, type SyntheticMrSeries } from '../../results/synthetic-mr';
import { fromModelGrid, toModelGrid, type ModelGrid } from '../../study';
import type { Volume } from '../../types';
import { deployment, modelUse, provenanceOf } from '../common';
import type { ModelUse, ProcessorDeps, TaskObject } from '../task';
import { fuse } from './fusion';
import { TUMOUR_SEQUENCES } from '../../results/tumour';
import { sequenceOf, zscoreBrain, type TumourSegmentation, type TumourSequence } from './index';
import { ddimSample, readSampler, SynthesisBudgetExceeded, timestepsFor, type RunModel } from './synthesis';

export type SegmentRoute = 'acquired-only' | 'with-synthesis';

export interface SeriesTiming {
  sequence?: TumourSequence;
  seriesInstanceUid: string;
  seriesDescription: string;
  instances: number;
  /** Back to the reference grid + DICOM encoding of this series, ms. */
  encodeMs: number;
}

export interface SynthesisOutcome {
  model?: string;
  /** Sequences synthesised and sent as series. */
  sequences: TumourSequence[];
  series: SeriesTiming[];
  steps?: number;
  /** DDIM sampling of all missing sequences together (one joint sample), ms. */
  samplingMs?: number;
  /** Per sequence: its share of the joint sampling (samplingMs / number synthesised) + its own encoding, ms. */
  perSequenceMs?: Partial<Record<TumourSequence, number>>;
  segmentWith: SegmentRoute;
  segmentWithReason: string;
  budgetSeconds: number;
  /** Why no (or not every) synthetic series was sent. */
  skipped?: string;
}

export interface FusionOutcome {
  model?: string;
  fusedFrom: TumourSequence[];
  series?: SeriesTiming;
  /** Mean weight of each sequence inside the brain. */
  meanWeights?: Partial<Record<TumourSequence, number>>;
  inferenceMs?: number;
  skipped?: string;
}

export interface SynthesisStageResult {
  objects: TaskObject[];
  /** Labels of the segmentation on acquired + synthesised inputs (with-synthesis only). */
  labels?: Uint8Array;
  /** Sequences the segmentation got as synthesised images (with-synthesis only; else []). */
  synthesised: TumourSequence[];
  /** Sentences for the outcome notes and the SR. */
  notes: string[];
  models: ModelUse[];
  synthesis: SynthesisOutcome;
  fusion: FusionOutcome;
  totalMs: number;
}

export interface SynthesisStageInput {
  deps: ProcessorDeps;
  headers: Map<string, import('../../dicom/dcmjs').NaturalDataset>;
  seg: TumourSegmentation;
  /** The acquired volumes (their own geometry), by sequence. */
  vols: Partial<Record<TumourSequence, Volume>>;
  /** The segmentation model that made seg (re-run for with-synthesis). */
  segModel: string;
  timings: Record<string, number>;
  tStart: number;
}

const r1 = (x: number): number => Math.round(x * 10) / 10;

function runnerOf(deps: ProcessorDeps, name: string): RunModel {
  return (feeds) => deps.registry.run(name, feeds);
}

/** The route the measurement picked (metrics.downstream.bestRoute of the synthesis manifest). */
export function measuredRoute(m: ModelManifest | undefined): { route: SegmentRoute; reason: string } {
  const raw = m as unknown as { metrics?: { downstream?: { bestRoute?: unknown } }; downstream?: { bestRoute?: unknown } } | undefined;
  const best = raw?.metrics?.downstream?.bestRoute ?? raw?.downstream?.bestRoute;
  if (best === 'acquired-only' || best === 'with-synthesis') {
    return { route: best, reason: `measured on the BraTS TEST split (${m!.name} metrics.downstream.bestRoute)` };
  }
  return { route: 'acquired-only', reason: `no measured route in the ${m?.name ?? 'synthesis'} manifest: acquired-only` };
}

/**
 * The synthesis model's own hallucination check for one sequence (metrics.downstream.synthesisedAlone /
 * trueAlone of its manifest: the tumour segmented on the synthetic image alone vs on the true one, BraTS
 * TEST split), in words for the synthetic series' ImageComments; undefined when the manifest has none.
 */
export function qualityNoteOf(m: ModelManifest | undefined, q: TumourSequence): string | undefined {
  const raw = m as unknown as { metrics?: { downstream?: { synthesisedAlone?: Record<string, { WT?: number }>; trueAlone?: Record<string, { WT?: number }> } } } | undefined;
  const d = raw?.metrics?.downstream;
  const pick = (r?: Record<string, { WT?: number }>) => Object.entries(r ?? {}).find(([k]) => k.toUpperCase() === q.toUpperCase())?.[1]?.WT;
  const syn = pick(d?.synthesisedAlone);
  const acq = pick(d?.trueAlone);
  if (typeof syn !== 'number' || typeof acq !== 'number') return undefined;
  return `Measured for ${m!.name} ${m!.version} on the BraTS TEST split: the tumour segmented on this synthetic ${q} alone matched the expert whole tumour with Dice ${syn.toFixed(2)}, on the acquired ${q} alone ${acq.toFixed(2)}.`;
}

/** The model-grid channels [S, C, H, W] in the manifest's channel order, and the modality-mask row. */
function modelInputs(
  m: ModelManifest,
  seg: TumourSegmentation,
  extra?: Map<TumourSequence, Float32Array>,
): { x: Float32Array; maskRow: number[]; mg: ModelGrid; brain: Float32Array; channels: (TumourSequence | undefined)[] } {
  const g = seg.reference.geometry;
  const mg: ModelGrid = { size: m.inputs.grid.size, spacingMm: m.inputs.grid.spacingMm };
  const [H, W] = mg.size;
  const plane = H * W;
  const S = g.slices;
  const channels = m.inputs.channels.map((c) => sequenceOf(c.modality));
  const C = channels.length;
  const x = new Float32Array(S * C * plane);
  const have = new Set<TumourSequence>();
  channels.forEach((q, ci) => {
    if (!q) return;
    let onModel: Float32Array | undefined = extra?.get(q);
    if (!onModel) {
      const vol = seg.present.includes(q) ? seg.grid.volumes[q] : undefined;
      if (!vol) return;
      const spec = m.inputs.normalisation[m.inputs.channels[ci].modality];
      const clip: [number, number] = spec && 'clip' in spec && spec.clip ? spec.clip : [-5, 5];
      if (spec && spec.method !== 'zscore-brain') throw new Error(`model ${m.name}: normalisation ${spec.method}, the tumour task applies zscore-brain`);
      onModel = toModelGrid({ ...seg.reference, data: zscoreBrain(vol, seg.brainMask.mask, clip) }, mg).data;
    }
    have.add(q);
    for (let z = 0; z < S; z++) x.set(onModel.subarray(z * plane, (z + 1) * plane), (z * C + ci) * plane);
  });
  const order = (m.inputs.modalityMaskOrder as string[] | undefined) ?? m.inputs.channels.map((c) => c.modality);
  const maskRow = order.map((mod) => {
    const q = sequenceOf(mod);
    return q && have.has(q) ? 1 : 0;
  });
  const bm = new Float32Array(seg.brainMask.mask.length);
  for (let i = 0; i < bm.length; i++) bm[i] = seg.brainMask.mask[i] ? 1 : 0;
  const bOn = toModelGrid({ ...seg.reference, data: bm }, mg).data;
  const brain = new Float32Array(bOn.length);
  for (let i = 0; i < brain.length; i++) brain[i] = bOn[i] > 0.5 ? 1 : 0;
  return { x, maskRow, mg, brain, channels };
}

/** Channel c of [S, C, H, W] as [S, H, W]. */
function channel(x: Float32Array, S: number, C: number, plane: number, c: number): Float32Array {
  const out = new Float32Array(S * plane);
  for (let z = 0; z < S; z++) out.set(x.subarray((z * C + c) * plane, (z * C + c + 1) * plane), z * plane);
  return out;
}

/** A model-grid image [S, H, W] back on the reference slices, 0 outside the brain mask. */
function toReference(img: Float32Array, seg: TumourSegmentation, mg: ModelGrid): Float32Array {
  const out = fromModelGrid(img, seg.reference.geometry, mg);
  const mask = seg.brainMask.mask;
  for (let i = 0; i < out.length; i++) if (!mask[i]) out[i] = 0;
  return out;
}

/**
 * The segmentation model on given model-grid channels (acquired + synthesised): softmax, each class back onto the
 * reference slices, argmax, 0 outside the brain (the same post-processing as segmentTumour).
 */
async function segmentWithChannels(deps: ProcessorDeps, modelName: string, seg: TumourSegmentation, synth: Map<TumourSequence, Float32Array>, batch: number): Promise<Uint8Array> {
  const entry = deps.registry.get(modelName);
  if (!entry?.manifest) throw new Error(`model ${modelName} missing`);
  const m = entry.manifest;
  const { x, maskRow, mg } = modelInputs(m, seg, synth);
  const [H, W] = mg.size;
  const plane = H * W;
  const S = seg.reference.geometry.slices;
  const C = m.inputs.channels.length;
  let probs: Float32Array | undefined;
  let K = 0;
  for (let z0 = 0; z0 < S; z0 += batch) {
    const n = Math.min(batch, S - z0);
    const feeds: Record<string, { data: Float32Array; dims: number[] }> = {
      [m.inputs.tensor]: { data: x.slice(z0 * C * plane, (z0 + n) * C * plane), dims: [n, C, H, W] },
    };
    if (m.inputs.modalityMaskTensor) {
      const mm = new Float32Array(n * maskRow.length);
      for (let k = 0; k < n; k++) mm.set(maskRow, k * maskRow.length);
      feeds[m.inputs.modalityMaskTensor] = { data: mm, dims: [n, maskRow.length] };
    }
    const out = (await deps.registry.run(modelName, feeds))[m.outputs.tensor];
    if (!out) throw new Error(`model ${modelName} returned no "${m.outputs.tensor}" output`);
    K = out.dims[1];
    probs ??= new Float32Array(K * S * plane);
    const e = new Float64Array(K);
    for (let k = 0; k < n; k++) {
      for (let p = 0; p < plane; p++) {
        let mx = -Infinity;
        for (let c = 0; c < K; c++) mx = Math.max(mx, out.data[(k * K + c) * plane + p]);
        let sum = 0;
        for (let c = 0; c < K; c++) sum += e[c] = Math.exp(out.data[(k * K + c) * plane + p] - mx);
        for (let c = 0; c < K; c++) probs[(c * S + z0 + k) * plane + p] = e[c] / sum;
      }
    }
  }
  const g = seg.reference.geometry;
  const nv = S * g.rows * g.columns;
  const best = new Float32Array(nv).fill(-1);
  const labels = new Uint8Array(nv);
  for (let c = 0; c < K; c++) {
    const onSrc = fromModelGrid(probs!.subarray(c * S * plane, (c + 1) * S * plane), g, mg);
    for (let i = 0; i < nv; i++) {
      if (onSrc[i] > best[i]) {
        best[i] = onSrc[i];
        labels[i] = c;
      }
    }
  }
  for (let i = 0; i < nv; i++) if (!seg.brainMask.mask[i] || labels[i] > 3) labels[i] = 0;
  return labels;
}

function objectsOf(kind: string, s: SyntheticMrSeries): TaskObject[] {
  return s.instances.map((i) => ({ kind, part10: i.part10, sop: i.sopInstanceUid, series: s.seriesInstanceUid }));
}

/** The issue 15 stage (file comment). Never throws for a synthesis / fusion problem: it becomes a note. */
export async function synthesisStage(input: SynthesisStageInput): Promise<SynthesisStageResult> {
  const { deps, seg, timings } = input;
  const { config, registry } = deps;
  const cfg = config.brainTumour;
  const t0 = performance.now();
  const budgetMs = cfg.synthesis.budgetSeconds * 1000;
  const deadline = { at: t0 + budgetMs, budgetMs, start: t0 };
  const over = (where: string): void => {
    const now = performance.now();
    if (now > deadline.at) throw new SynthesisBudgetExceeded(now - t0, budgetMs, where);
  };
  const objects: TaskObject[] = [];
  const notes: string[] = [];
  const models: ModelUse[] = [];
  const base = config.output.seriesNumberBase;
  const dep = deployment(config, deps.nodeVersion);
  const sources: AcquiredSource[] = seg.present.filter((q) => input.vols[q]).map((q) => ({ sequence: q, volume: input.vols[q]! }));
  const sourceUids = [...new Set(sources.map((s) => s.volume.seriesInstanceUid))];
  const refImage = (data: Float32Array): Volume => ({ ...seg.reference, data, computed: true });
  const S = seg.reference.geometry.slices;

  const synModel: LoadedModel | undefined = registry.get(cfg.synthesis.model);
  const measured = measuredRoute(synModel?.manifest);
  const segmentWith: SegmentRoute = cfg.synthesis.segmentWith === 'measured' ? measured.route : cfg.synthesis.segmentWith;
  const segmentWithReason = cfg.synthesis.segmentWith === 'measured' ? measured.reason : 'set in the configuration (brainTumour.synthesis.segmentWith)';
  const synthesis: SynthesisOutcome = { sequences: [], series: [], segmentWith, segmentWithReason, budgetSeconds: cfg.synthesis.budgetSeconds };
  let labels: Uint8Array | undefined;
  let synthesised: TumourSequence[] = [];
  let budgetHit: SynthesisBudgetExceeded | undefined;

  // 2-3. synthesis of the missing sequences
  const missing = seg.missing.filter((q) => TUMOUR_SEQUENCES.includes(q));
  if (!missing.length) synthesis.skipped = 'all four sequences acquired: nothing to synthesise';
  else if (!cfg.synthesis.enabled) synthesis.skipped = 'synthesis disabled in the configuration (brainTumour.synthesis.enabled)';
  else if (!synModel?.manifest || !registry.isReady(cfg.synthesis.model)) synthesis.skipped = `synthesis model "${cfg.synthesis.model}" is not installed or not ready`;
  else {
    try {
      const m = synModel.manifest;
      const spec = readSampler(m);
      const ts = timestepsFor(spec, cfg.synthesis.steps);
      synthesis.model = m.name;
      synthesis.steps = ts.length;
      let t = performance.now();
      const { x, maskRow, mg, brain, channels } = modelInputs(m, seg);
      timings.synthesisPreprocess = (timings.synthesisPreprocess ?? 0) + performance.now() - t;
      const [H, W] = mg.size;
      const plane = H * W;
      const C = channels.length;
      t = performance.now();
      const tensors = {
        x: m.inputs.tensor,
        mask: m.inputs.modalityMaskTensor ?? 'modality_mask',
        t: (m.inputs as { timestepTensor?: string }).timestepTensor ?? 't',
        out: m.outputs.tensor,
      };
      const sample = await ddimSample(
        runnerOf(deps, m.name),
        { xAcq: x, maskRow, brain, n: S, h: H, w: W, seed: cfg.synthesis.seed },
        { timesteps: ts, alphasCumprod: spec.alphasCumprod, tensors, batch: cfg.synthesis.batch, deadline },
      );
      synthesis.samplingMs = Math.round(performance.now() - t);
      timings.synthesis = (timings.synthesis ?? 0) + performance.now() - t;
      models.push(modelUse(synModel));
      const onModel = new Map<TumourSequence, Float32Array>();
      const written: { q: TumourSequence; series: SyntheticMrSeries; ms: number }[] = [];
      const method = `DDIM ${ts.length} steps (t ${ts[0]}..${ts[ts.length - 1]}), eta 0, seed ${cfg.synthesis.seed}`;
      for (const q of missing) {
        const ci = channels.indexOf(q);
        if (ci < 0) continue;
        over(`before encoding the synthetic ${q}`);
        t = performance.now();
        const img = channel(sample, S, C, plane, ci);
        onModel.set(q, img);
        const series = writeSyntheticSequence({
          sequence: q,
          image: refImage(toReference(img, seg, mg)),
          brainMask: seg.brainMask.mask,
          sources,
          sourceHeaders: input.headers,
          provenance: provenanceOf(deps, synModel, sourceUids, input.tStart, true),
          deployment: dep,
          method,
          qualityNote: qualityNoteOf(synModel.manifest, q),
          options: { seriesNumber: base + 13 + TUMOUR_SEQUENCES.indexOf(q) },
        });
        written.push({ q, series, ms: performance.now() - t });
        timings.synthesisEncode = (timings.synthesisEncode ?? 0) + performance.now() - t;
      }
      for (const w of written) {
        objects.push(...objectsOf('SYNTHETIC_MR', w.series));
        synthesis.sequences.push(w.q);
        synthesis.series.push({ sequence: w.q, seriesInstanceUid: w.series.seriesInstanceUid, seriesDescription: w.series.seriesDescription, instances: w.series.instances.length, encodeMs: Math.round(w.ms) });
      }
      const share = synthesis.samplingMs / Math.max(1, written.length);
      synthesis.perSequenceMs = Object.fromEntries(written.map((w) => [w.q, Math.round(share + w.ms)]));
      notes.push(
        `synthetic ${written.map((w) => w.q).join(', ')} sent as series labelled "AI-generated, not acquired" (${m.name}, ${method}; sampling ${r1(synthesis.samplingMs / 1000)} s for all together)`,
      );
      if (segmentWith === 'with-synthesis' && onModel.size) {
        over('before the segmentation with the synthesised sequences');
        t = performance.now();
        labels = await segmentWithChannels(deps, input.segModel, seg, onModel, cfg.synthesis.batch);
        synthesised = [...onModel.keys()];
        timings.inference = (timings.inference ?? 0) + performance.now() - t;
        notes.push(`segmentation on the acquired ${seg.present.join(', ')} + synthesised ${synthesised.join(', ')} (${segmentWithReason})`);
      } else {
        notes.push(`segmentation on the acquired sequences only (${segmentWithReason})`);
      }
    } catch (e) {
      if (e instanceof SynthesisBudgetExceeded) {
        budgetHit = e;
        synthesis.skipped = `not sent: ${e.message}; the segmentation and SR went out without synthetic series`;
      } else {
        synthesis.skipped = `synthesis failed: ${(e as Error).message}`;
      }
      // nothing partial: a synthetic series already encoded is dropped with the rest
      objects.length = 0;
      synthesis.sequences = [];
      synthesis.series = [];
      delete synthesis.perSequenceMs;
      labels = undefined;
      synthesised = [];
      notes.push(`synthetic ${missing.join(', ')} ${synthesis.skipped}`);
    }
  }
  if (synthesis.skipped && !notes.some((n) => n.includes(synthesis.skipped!))) notes.push(`synthesis: ${synthesis.skipped}`);

  // 4. fusion of the acquired sequences
  const fusion: FusionOutcome = { fusedFrom: [] };
  const fusModel: LoadedModel | undefined = registry.get(cfg.fusion.model);
  if (!cfg.fusion.enabled) fusion.skipped = 'fusion disabled in the configuration (brainTumour.fusion.enabled)';
  else if (!fusModel?.manifest || !registry.isReady(cfg.fusion.model)) fusion.skipped = `fusion model "${cfg.fusion.model}" is not installed or not ready`;
  else if (budgetHit) fusion.skipped = `not sent: ${budgetHit.message}`;
  else {
    try {
      const m = fusModel.manifest;
      let t = performance.now();
      const { x, maskRow, mg, brain, channels } = modelInputs(m, seg);
      const [H, W] = mg.size;
      const outs = (m as unknown as { outputs: { weights?: { tensor?: string } | string } }).outputs;
      const weightsName = typeof outs.weights === 'string' ? outs.weights : outs.weights?.tensor ?? 'weights';
      const r = await fuse(runnerOf(deps, m.name), { x, maskRow, brain, n: S, h: H, w: W }, {
        tensors: { input: m.inputs.tensor, mask: m.inputs.modalityMaskTensor ?? 'modality_mask', fused: m.outputs.tensor, weights: weightsName },
        batch: cfg.synthesis.batch,
        deadline,
      });
      fusion.inferenceMs = Math.round(performance.now() - t);
      timings.fusion = (timings.fusion ?? 0) + performance.now() - t;
      models.push(modelUse(fusModel));
      fusion.model = m.name;
      fusion.fusedFrom = channels.filter((q, ci): q is TumourSequence => !!q && maskRow[ci] === 1);
      if (r.meanWeights) fusion.meanWeights = Object.fromEntries(channels.map((q, ci) => [q, Math.round(r.meanWeights![ci] * 1000) / 1000]).filter(([q]) => q));
      over('before encoding the fused series');
      t = performance.now();
      const wText = r.meanWeights ? ` (mean weights ${fusion.fusedFrom.map((q) => `${q} ${fusion.meanWeights![q]?.toFixed(2)}`).join(', ')})` : '';
      const series = writeFusedSeries({
        fusedFrom: fusion.fusedFrom,
        method: 'weighted avg',
        image: refImage(toReference(r.fused, seg, mg)),
        brainMask: seg.brainMask.mask,
        sources,
        sourceHeaders: input.headers,
        provenance: provenanceOf(deps, fusModel, sourceUids, input.tStart, true),
        deployment: dep,
        options: { seriesNumber: base + 17 },
      });
      const ms = performance.now() - t;
      timings.synthesisEncode = (timings.synthesisEncode ?? 0) + ms;
      objects.push(...objectsOf('FUSED_MR', series));
      fusion.series = { seriesInstanceUid: series.seriesInstanceUid, seriesDescription: series.seriesDescription, instances: series.instances.length, encodeMs: Math.round(ms) };
      notes.push(`fused ${fusion.fusedFrom.join('+')} sent (${m.name}, voxel-wise weighted average${wText})`);
    } catch (e) {
      fusion.skipped = e instanceof SynthesisBudgetExceeded ? `not sent: ${e.message}` : `fusion failed: ${(e as Error).message}`;
      objects.splice(0, objects.length, ...objects.filter((o) => o.kind !== 'FUSED_MR'));
      notes.push(`fused series ${fusion.skipped}`);
    }
  }
  return { objects, labels, synthesised, notes, models, synthesis, fusion, totalMs: Math.round(performance.now() - t0) };
}
