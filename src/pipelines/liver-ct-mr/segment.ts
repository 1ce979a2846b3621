/**
 * The liver model on one in-memory series (issue 16 contract, models/liver-aqcf.json), callable from the task,
 * tests and benches alike: segmentLiver(registry, model, volume, 'CT' | 'MR', timings).
 *
 *   1. normalise  CT: HU → clip((HU - (L - W/2)) / W, 0, 1) from the manifest's `window` (W 400 / L 60);
 *                 MRI: per 3-D series, x = clip(v / median(v[v > mean(v)]), 0, 5) (numpy's median: the mean of the
 *                 two middle values for an even count)
 *   2. grid       each acquired slice on its own, bilinear to the manifest grid (128 x 128 at 3 mm) centred on the
 *                 slice centre; outside the source image 0 (study/resample.ts toModelGrid, as ct_phantoms.to_model_grid)
 *   3. inference  ONNX `image` [N,1,H,W] + `modality` [N] (1 CT, 0 MRI) → `logits` [N,3,H,W], batches of slices
 *   4. back       softmax, the 3 probabilities bilinear onto every source pixel (as fromModelGrid), argmax (source
 *                 pixels outside the model grid: background), fused in backArgmax
 *   5. post       largest liver component, small and implausibly shaped tumours → liver (measure.ts postprocessLiver,
 *                 manifest `postprocess`)
 *   6. measure    liver / tumour volumes, per-tumour volume, longest axial diameter and centroid (measureLiver)
 */
import { liverPostprocess, type ModelManifest } from '../../models/manifest';
import type { ModelRegistry } from '../../models/registry';
import { toModelGrid, type ModelGrid } from '../../study';
import type { Volume } from '../../types';
import { normalise, selectKth } from '../preprocess';
import { measureLiver, postprocessLiver, type LiverMeasurements } from './measure';

export type LiverModality = 'CT' | 'MR';

/** Slices per ONNX call (bounds the memory of one call; the result does not depend on it). */
const BATCH = 16;

/** The MRI normalisation of the contract: x = clip(v / median(v[v > mean(v)]), lo, hi), numpy median. */
export function mrMedianNormalise(data: Float32Array, clip: [number, number]): { x: Float32Array; scale: number } {
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum += data[i];
  const mean = sum / Math.max(1, data.length);
  let n = 0;
  for (let i = 0; i < data.length; i++) if (data[i] > mean) n++;
  const fg = new Float32Array(n);
  for (let i = 0, j = 0; i < data.length; i++) if (data[i] > mean) fg[j++] = data[i];
  let s = 1;
  if (n) {
    const hiMid = selectKth(fg, n >> 1);
    s = n % 2 ? hiMid : (hiMid + selectKth(fg, (n >> 1) - 1)) / 2;
  }
  const x = new Float32Array(data.length);
  // float32 division as numpy does it (a double quotient of two float32 values rounds to the same float32)
  const div = Math.fround(Math.max(s, 1e-6));
  const [lo, hi] = clip;
  for (let i = 0; i < data.length; i++) {
    const v = data[i] / div;
    x[i] = v < lo ? lo : v > hi ? hi : v;
  }
  return { x, scale: s };
}

/**
 * The class probabilities (class-major [3][S][H][W] on the model grid) bilinear back onto every source pixel and the
 * argmax, in one pass: the same sample positions, weights, arithmetic and float32 rounding as study/resample.ts
 * fromModelGrid + a first-maximum argmax (as numpy), without three full-size probability volumes (a 512² x 100 CT:
 * 3 x 100 MB). Source pixels outside the model grid get 0 for every class: background.
 */
export function backArgmax(probs: Float32Array, S: number, g: { rows: number; columns: number; pixelSpacing: [number, number] }, mg: ModelGrid): Uint8Array {
  const [H, W] = mg.size;
  const plane = H * W;
  const { rows, columns } = g;
  const axis = (n: number, src: number, spacing: number, dstN: number) => {
    const i0 = new Int32Array(n);
    const i1 = new Int32Array(n);
    const f = new Float64Array(n);
    const inside = new Uint8Array(n);
    for (let k = 0; k < n; k++) {
      const x = (dstN - 1) / 2 + (k - (src - 1) / 2) * (spacing / mg.spacingMm);
      if (x < -0.5 || x > dstN - 0.5) continue;
      const xx = Math.min(Math.max(x, 0), dstN - 1);
      i0[k] = Math.floor(xx);
      i1[k] = Math.min(i0[k] + 1, dstN - 1);
      f[k] = xx - i0[k];
      inside[k] = 1;
    }
    return { i0, i1, f, inside };
  };
  const R = axis(rows, rows, g.pixelSpacing[0], H);
  const C = axis(columns, columns, g.pixelSpacing[1], W);
  const out = new Uint8Array(S * rows * columns);
  for (let z = 0; z < S; z++) {
    for (let r = 0; r < rows; r++) {
      if (!R.inside[r]) continue;
      const fr = R.f[r];
      const a0 = R.i0[r] * W;
      const a1 = R.i1[r] * W;
      const o = (z * rows + r) * columns;
      for (let c = 0; c < columns; c++) {
        if (!C.inside[c]) continue;
        const fc = C.f[c];
        const c0 = C.i0[c];
        const c1 = C.i1[c];
        let best = -1;
        let label = 0;
        for (let k = 0; k < 3; k++) {
          const off = (k * S + z) * plane;
          const v = Math.fround((1 - fr) * ((1 - fc) * probs[off + a0 + c0] + fc * probs[off + a0 + c1]) + fr * ((1 - fc) * probs[off + a1 + c0] + fc * probs[off + a1 + c1]));
          if (v > best) {
            best = v;
            label = k;
          }
        }
        out[o + c] = label;
      }
    }
  }
  return out;
}

export interface LiverSegmentation {
  /** Post-processed labels on the volume's grid: 0 background, 1 liver, 2 liver tumour. */
  labels: Uint8Array;
  /** The argmax before post-processing (tests, benches). */
  raw: Uint8Array;
  measurements: LiverMeasurements;
  postprocessing: string;
  notes: string[];
}

function modelGridOf(m: ModelManifest): ModelGrid {
  return { size: m.inputs.grid.size, spacingMm: m.inputs.grid.spacingMm };
}

/** Steps 1-2: the model input [S, H, W] of a series. */
export function liverModelInput(m: ModelManifest, volume: Volume, modality: LiverModality): { x: Float32Array; note: string } {
  const spec = m.inputs.normalisation[modality];
  if (!spec) throw new Error(`model ${m.name}: no normalisation for ${modality} in its manifest`);
  let norm: Float32Array;
  let note: string;
  if (modality === 'CT') {
    if (spec.method !== 'window') throw new Error(`model ${m.name}: CT normalisation ${spec.method}, the liver task applies a HU window`);
    norm = normalise(volume.data, spec);
    note = `CT window W ${spec.width} / L ${spec.center}`;
  } else {
    if (spec.method !== 'median-foreground') throw new Error(`model ${m.name}: MRI normalisation ${spec.method}, the liver task applies median-foreground`);
    const r = mrMedianNormalise(volume.data, spec.clip);
    norm = r.x;
    note = `MRI scaled by the median above the series mean (${r.scale.toFixed(1)}), clipped to [${spec.clip.join(', ')}]`;
  }
  return { x: toModelGrid({ ...volume, data: norm }, modelGridOf(m)).data, note };
}

/** Steps 1-6 of the file comment. Stage times (ms) are added to `timings`: preprocess, inference, postprocess, measure. */
export async function segmentLiver(
  registry: Pick<ModelRegistry, 'get' | 'run'>,
  modelName: string,
  volume: Volume,
  modality: LiverModality,
  timings: Record<string, number> = {},
): Promise<LiverSegmentation> {
  const entry = registry.get(modelName);
  if (!entry?.manifest) throw new Error(`model ${modelName} missing`);
  const m = entry.manifest;
  if (m.task !== 'liver-tumour-segmentation') throw new Error(`model ${modelName} is a ${m.task} model, not liver-tumour-segmentation`);
  const add = (k: string, t0: number) => (timings[k] = (timings[k] ?? 0) + performance.now() - t0);
  const g = volume.geometry;
  const mg = modelGridOf(m);
  const [H, W] = mg.size;
  const plane = H * W;
  const S = g.slices;

  let t = performance.now();
  const { x, note } = liverModelInput(m, volume, modality);
  const modTensor = m.inputs.modalityTensor ?? 'modality';
  const modValue = m.inputs.modalityValues?.[modality] ?? (modality === 'CT' ? 1 : 0);
  add('preprocess', t);

  const probs = new Float32Array(S * 3 * plane);
  const e = new Float64Array(3);
  for (let z0 = 0; z0 < S; z0 += BATCH) {
    t = performance.now();
    const n = Math.min(BATCH, S - z0);
    const out = await registry.run(modelName, {
      [m.inputs.tensor]: { data: x.slice(z0 * plane, (z0 + n) * plane), dims: [n, 1, H, W] },
      [modTensor]: { data: new Float32Array(n).fill(modValue), dims: [n] },
    });
    add('inference', t);
    t = performance.now();
    const logits = out[m.outputs.tensor];
    if (!logits) throw new Error(`model ${modelName} returned no "${m.outputs.tensor}" output`);
    if (logits.dims.length !== 4 || logits.dims[0] !== n || logits.dims[1] !== 3 || logits.dims[2] !== H || logits.dims[3] !== W) {
      throw new Error(`model ${modelName}: "${m.outputs.tensor}" has shape [${logits.dims.join(', ')}], expected [${n}, 3, ${H}, ${W}]`);
    }
    const d = logits.data;
    for (let k = 0; k < n; k++) {
      const base = k * 3 * plane;
      for (let p = 0; p < plane; p++) {
        const a = d[base + p];
        const b = d[base + plane + p];
        const c = d[base + 2 * plane + p];
        const mx = a > b ? (a > c ? a : c) : b > c ? b : c;
        const s = (e[0] = Math.exp(a - mx)) + (e[1] = Math.exp(b - mx)) + (e[2] = Math.exp(c - mx));
        for (let cl = 0; cl < 3; cl++) probs[(cl * S + z0 + k) * plane + p] = e[cl] / s;
      }
    }
    add('postprocess', t);
  }

  // back onto the source pixels, argmax (first maximum, as numpy)
  t = performance.now();
  const raw = backArgmax(probs, S, g, mg);
  const pp = liverPostprocess(m, modality === 'CT' ? 'CT' : 'MR');
  const grid = { slices: S, rows: g.rows, columns: g.columns, pixelSpacing: g.pixelSpacing, sliceSpacing: g.sliceSpacing };
  const post = postprocessLiver(raw, grid, pp);
  add('postprocess', t);

  t = performance.now();
  const measurements = measureLiver(post.labels, grid, g);
  add('measure', t);
  const fovMm = [g.rows * g.pixelSpacing[0], g.columns * g.pixelSpacing[1]];
  const modelFov = H * mg.spacingMm;
  const notes = [
    `${modality === 'CT' ? 'CT' : 'MRI'} input: ${note}; each of the ${S} slices on the ${H}x${W} model grid at ${mg.spacingMm} mm`,
    ...(fovMm.some((f) => f > modelFov + 1) ? [`the series' field of view (${fovMm.map((f) => f.toFixed(0)).join(' x ')} mm) is wider than the model's ${modelFov} mm: pixels outside it are background`] : []),
  ];
  return { labels: post.labels, raw, measurements, postprocessing: post.summary, notes };
}
