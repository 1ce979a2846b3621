/**
 * The fused image of the acquired sequences with brats-nslf (issue 15): one ONNX pass per batch of slices over
 * `input` [N, 4, H, W] (missing channels 0) + `modality_mask` [N, 4]; outputs `fused` [N, 1, H, W] (a voxel-wise
 * weighted average of the ACQUIRED sequences: one sigmoid weight map per sequence, missing ones zero, normalised to
 * sum 1) and `weights` [N, 4, H, W]. The node multiplies the fused image by the brain mask and keeps the mean
 * weight of each sequence inside the brain for the outcome and the series description.
 */
import type { Feeds, RunModel } from './synthesis';
import { SynthesisBudgetExceeded } from './synthesis';

export interface FusionInput {
  /** Acquired images [N, C, H, W] (missing channels ignored: written as 0). */
  x: Float32Array;
  maskRow: number[];
  brain: Float32Array | Uint8Array;
  n: number;
  h: number;
  w: number;
}

export interface FusionOptions {
  tensors: { input: string; mask: string; fused: string; weights?: string };
  batch?: number;
  deadline?: { at: number; budgetMs: number; start: number };
}

export interface FusionResult {
  /** [N, H, W], 0 outside the brain. */
  fused: Float32Array;
  /** Mean weight of each channel inside the brain (sums to ~1 over the acquired ones); undefined without `weights`. */
  meanWeights?: number[];
}

export async function fuse(run: RunModel, input: FusionInput, o: FusionOptions): Promise<FusionResult> {
  const { n, h, w, maskRow } = input;
  const C = maskRow.length;
  const plane = h * w;
  const per = C * plane;
  if (!maskRow.some((m) => m)) throw new Error('fusion needs at least one acquired sequence');
  if (input.x.length !== n * per) throw new Error(`x has ${input.x.length} values, expected ${n * per}`);
  if (input.brain.length !== n * plane) throw new Error(`brain has ${input.brain.length} values, expected ${n * plane}`);
  const batch = Math.max(1, o.batch ?? 16);
  const fused = new Float32Array(n * plane);
  const wSum = new Float64Array(C);
  let wCount = 0;
  let haveWeights = false;
  for (let z0 = 0; z0 < n; z0 += batch) {
    if (o.deadline) {
      const now = performance.now();
      if (now > o.deadline.at) throw new SynthesisBudgetExceeded(now - o.deadline.start, o.deadline.budgetMs, 'before fusion');
    }
    const k = Math.min(batch, n - z0);
    const xin = new Float32Array(k * per);
    for (let s = 0; s < k; s++) {
      for (let c = 0; c < C; c++) {
        if (!maskRow[c]) continue;
        const off = (z0 + s) * per + c * plane;
        xin.set(input.x.subarray(off, off + plane), s * per + c * plane);
      }
    }
    const mask = new Float32Array(k * C);
    for (let s = 0; s < k; s++) mask.set(maskRow, s * C);
    const feeds: Feeds = { [o.tensors.input]: { data: xin, dims: [k, C, h, w] }, [o.tensors.mask]: { data: mask, dims: [k, C] } };
    const out = await run(feeds);
    const f = out[o.tensors.fused];
    if (!f) throw new Error(`fusion model returned no "${o.tensors.fused}" output`);
    if (f.dims.length !== 4 || f.dims[0] !== k || f.dims[1] !== 1 || f.dims[2] !== h || f.dims[3] !== w) {
      throw new Error(`fusion model: "${o.tensors.fused}" has shape [${f.dims.join(', ')}], expected [${k}, 1, ${h}, ${w}]`);
    }
    for (let i = 0; i < k * plane; i++) fused[z0 * plane + i] = input.brain[z0 * plane + i] ? f.data[i] : 0;
    const wt = o.tensors.weights ? out[o.tensors.weights] : undefined;
    if (wt && wt.dims[1] === C) {
      haveWeights = true;
      for (let s = 0; s < k; s++) {
        for (let p = 0; p < plane; p++) {
          if (!input.brain[(z0 + s) * plane + p]) continue;
          wCount++;
          for (let c = 0; c < C; c++) wSum[c] += wt.data[s * per + c * plane + p];
        }
      }
    }
  }
  return { fused, meanWeights: haveWeights && wCount ? [...wSum].map((v) => v / wCount) : undefined };
}
