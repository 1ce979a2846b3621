/**
 * Pre- and post-processing exactly as each model's manifest says (models/README.md contract):
 * normalisation, the in-plane model grid, the three-slice context, the modality mask, and the way
 * back to the source slices.
 */
import { NormalisationSpec, ModelManifest } from '../models/manifest';
import { ModelGrid, toModelGrid, fromModelGrid } from '../study';
import { Volume } from '../types';

/** Normalise a whole volume (returns a new array). */
export function normalise(data: Float32Array, spec: NormalisationSpec): Float32Array {
  const out = new Float32Array(data.length);
  const clip = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);
  if (spec.method === 'scale') {
    const [lo, hi] = spec.clip;
    for (let i = 0; i < data.length; i++) out[i] = clip(data[i] * spec.factor, lo, hi);
    return out;
  }
  if (spec.method === 'window') {
    const lo0 = spec.center - spec.width / 2;
    const [lo, hi] = spec.clip ?? [0, 1];
    for (let i = 0; i < data.length; i++) out[i] = clip((data[i] - lo0) / spec.width, lo, hi);
    return out;
  }
  if (spec.method === 'zscore-brain') {
    // needs the brain mask on the reference grid: the brain tumour task normalises (brain-tumour-mr/index.ts)
    throw new Error('zscore-brain normalisation needs a brain mask: use zscoreBrain() of the brain-tumour-mr task');
  }
  // median-foreground: t = mean of the volume; s = median of voxels > t; x = clip(v / s).
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum += data[i];
  const t = sum / Math.max(1, data.length);
  let count = 0;
  for (let i = 0; i < data.length; i++) if (data[i] > t) count++;
  const fg = new Float32Array(count);
  for (let i = 0, j = 0; i < data.length; i++) if (data[i] > t) fg[j++] = data[i];
  // the upper-middle element of the sorted foreground, found by selection (a full sort of a
  // 2-million-voxel volume took ~200 ms of the study's pre-processing)
  const s = count ? selectKth(fg, Math.floor(count / 2)) : 1;
  const [lo, hi] = spec.clip;
  const inv = s > 0 ? 1 / s : 0;
  for (let i = 0; i < data.length; i++) out[i] = clip(data[i] * inv, lo, hi);
  return out;
}

/** The k-th smallest value of a (0-based), as a[k] would be after sorting; reorders a in place. */
export function selectKth(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    // median of three as the pivot keeps sorted or constant runs from going quadratic
    const mid = (lo + hi) >>> 1;
    const x = a[lo], y = a[mid], z = a[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const tmp = a[i];
        a[i] = a[j];
        a[j] = tmp;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/**
 * For each slice of `ref`, the index of the slice of `other` nearest along ref's normal, or -1 when
 * the nearest is further than half a slice spacing (the two series do not cover that slice).
 */
export function pairSlices(ref: Volume, other: Volume): number[] {
  const n = ref.geometry.normal;
  const pos = (p: [number, number, number]) => p[0] * n[0] + p[1] * n[1] + p[2] * n[2];
  const refPos = ref.geometry.slicePositions.map(pos);
  const otherPos = other.geometry.slicePositions.map(pos);
  const tol = Math.max(0.5 * Math.max(ref.geometry.sliceSpacing, 0.1), 0.6);
  return refPos.map((p) => {
    let best = -1;
    let bestD = Infinity;
    otherPos.forEach((q, j) => {
      const d = Math.abs(q - p);
      if (d < bestD) {
        bestD = d;
        best = j;
      }
    });
    return bestD <= tol ? best : -1;
  });
}

export interface PreparedInput {
  feeds: Record<string, { data: Float32Array; dims: number[] }>;
  slices: number;
  grid: ModelGrid;
  /** Which modalities were present. */
  present: Record<string, boolean>;
}

/**
 * Build the model input for every slice of the reference volume: channels as listed in the manifest
 * (modality + slice offset, edges replicated), each modality normalised as the manifest says and
 * resampled to the model grid; a missing modality gives zero channels and a 0 in the modality mask.
 */
export function prepareInput(manifest: ModelManifest, ref: Volume, volumes: Record<string, Volume | undefined>): PreparedInput {
  const grid: ModelGrid = { size: manifest.inputs.grid.size, spacingMm: manifest.inputs.grid.spacingMm };
  const [H, W] = grid.size;
  const plane = H * W;
  const N = ref.geometry.slices;
  const channels = manifest.inputs.channels;
  const C = channels.length;
  const modalities = [...new Set(channels.map((c) => c.modality))];
  const onGrid = new Map<string, { data: Float32Array; pairing: number[] }>();
  const present: Record<string, boolean> = {};
  for (const m of modalities) {
    const v = volumes[m];
    present[m] = !!v;
    if (!v) continue;
    const spec = manifest.inputs.normalisation[m];
    if (!spec) throw new Error(`manifest of ${manifest.name} has no normalisation for ${m}`);
    const norm: Volume = { ...v, data: normalise(v.data, spec) };
    const g = toModelGrid(norm, grid);
    const pairing = v === ref ? ref.sliceSources.map((_, i) => i) : pairSlices(ref, v);
    onGrid.set(m, { data: g.data, pairing });
  }
  const input = new Float32Array(N * C * plane);
  for (let z = 0; z < N; z++) {
    channels.forEach((ch, ci) => {
      const src = onGrid.get(ch.modality);
      if (!src) return; // missing modality: zeros
      const zz = Math.min(N - 1, Math.max(0, z + ch.sliceOffset));
      const sz = src.pairing[zz];
      if (sz < 0) return;
      input.set(src.data.subarray(sz * plane, (sz + 1) * plane), (z * C + ci) * plane);
    });
  }
  const feeds: PreparedInput['feeds'] = { [manifest.inputs.tensor]: { data: input, dims: [N, C, H, W] } };
  if (manifest.inputs.modalityMaskTensor) {
    const mask = new Float32Array(N * modalities.length);
    for (let z = 0; z < N; z++) modalities.forEach((m, i) => (mask[z * modalities.length + i] = present[m] ? 1 : 0));
    feeds[manifest.inputs.modalityMaskTensor] = { data: mask, dims: [N, modalities.length] };
  }
  return { feeds, slices: N, grid, present };
}

/** Logits on the model grid → probability on the reference volume's own slices → binary mask. */
export function logitsToMask(logits: Float32Array, ref: Volume, grid: ModelGrid, threshold = 0.5): { mask: Uint8Array; prob: Float32Array } {
  const prob = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i++) prob[i] = 1 / (1 + Math.exp(-logits[i]));
  const onSource = fromModelGrid(prob, ref.geometry, grid);
  const mask = new Uint8Array(onSource.length);
  for (let i = 0; i < onSource.length; i++) mask[i] = onSource[i] >= threshold ? 1 : 0;
  return { mask, prob: onSource };
}
