/**
 * The committed fusion model models/brats-nslf matches its contract (models/README.md "Fusion (NSLF)"): the ONNX file
 * matches the manifest's sha256 and byte count; inputs `input` [N, 4, 128, 128] + `modality_mask` [N, 4] (FLAIR, T1,
 * T1c, T2); outputs `fused` [N, 1, 128, 128] and `weights` [N, 4, 128, 128] with a dynamic batch axis; for every one
 * of the 15 non-empty subsets the weights of missing sequences are exactly 0, the acquired ones' sum to 1 per voxel
 * and lie in [0, 1], and `fused` is the voxel-wise weighted average of the acquired inputs (so it stays within their
 * range); the weights really depend on the image (not a fixed mixture). TEST-set metrics come from
 * models/training/eval_fusion.py on the BraTS TEST cases, which are never committed.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';

const MODELS = path.resolve(__dirname, '../../models');
const HW = 128 * 128;

interface FusionManifest {
  name: string;
  file: string;
  sha256: string;
  bytes: number;
  task: string;
  inputs: { tensor: string; modalityMaskTensor: string; modalityMaskOrder: string[] };
  outputs: { fused: { tensor: string; seriesDescription: string }; weights: { tensor: string; order: string[] } };
  metrics: { split: string; all4: { nslf: { ssim: number; psnr: number; nmi: number } } };
}

function syntheticSlice(seed: number): Float32Array {
  const x = new Float32Array(4 * HW);
  for (let r = 0; r < 128; r++) {
    for (let c = 0; c < 128; c++) {
      if (((r - 64) / 52) ** 2 + ((c - 64) / 42) ** 2 >= 1) continue;
      const d = Math.hypot(r - 50 - seed, c - 75);
      for (let k = 0; k < 4; k++) {
        let v = 0.6 * Math.sin(r / (4 + seed) + k) * Math.cos(c / 7 - k);
        if (d < 14 && (k === 0 || k === 3)) v += 2.5;
        if (k === 2 && d > 5 && d < 8) v += 3;
        if (k === 1 && d < 8) v -= 1.5;
        x[k * HW + r * 128 + c] = v;
      }
    }
  }
  return x;
}

const SUBSETS: number[][] = [];
for (let s = 1; s < 16; s++) SUBSETS.push([0, 1, 2, 3].map((i) => (s >> i) & 1));

describe('brats-nslf (fusion) model', () => {
  const man: FusionManifest = JSON.parse(fs.readFileSync(path.join(MODELS, 'brats-nslf.json'), 'utf8'));
  const file = path.join(MODELS, man.file);
  let session: ort.InferenceSession;

  beforeAll(async () => {
    session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
  });

  it('manifest matches the file and the contract', () => {
    const buf = fs.readFileSync(file);
    expect(buf.length).toBe(man.bytes);
    expect(crypto.createHash('sha256').update(buf).digest('hex')).toBe(man.sha256);
    expect(man.task).toBe('mr-fusion');
    expect(man.inputs.modalityMaskOrder).toEqual(['FLAIR', 'T1', 'T1c', 'T2']);
    expect(man.outputs.weights.order).toEqual(['FLAIR', 'T1', 'T1c', 'T2']);
    expect(man.outputs.fused.seriesDescription).toMatch(/weighted average, weights by brats-nslf/);
    expect(man.metrics.split).toBe('test');
    expect(session.inputNames).toEqual(['input', 'modality_mask']);
    expect(session.outputNames.slice(0, 2)).toEqual(['fused', 'weights']);
  });

  it('every non-empty subset: missing weights 0, acquired weights sum to 1, fused = weighted average', async () => {
    const N = SUBSETS.length;
    const base = syntheticSlice(0);
    const x = new Float32Array(N * 4 * HW);
    const m = new Float32Array(N * 4);
    SUBSETS.forEach((s, n) => {
      for (let k = 0; k < 4; k++) {
        m[n * 4 + k] = s[k];
        if (s[k]) x.set(base.subarray(k * HW, (k + 1) * HW), (n * 4 + k) * HW);
      }
    });
    const r = await session.run({
      input: new ort.Tensor('float32', x, [N, 4, 128, 128]),
      modality_mask: new ort.Tensor('float32', m, [N, 4]),
    });
    expect(r.fused.dims).toEqual([N, 1, 128, 128]);
    expect(r.weights.dims).toEqual([N, 4, 128, 128]);
    const f = r.fused.data as Float32Array;
    const w = r.weights.data as Float32Array;
    let maxMissing = 0;
    let maxSumErr = 0;
    let maxAvgErr = 0;
    let outOfRange = 0;
    for (let n = 0; n < N; n++) {
      for (let p = 0; p < HW; p += 7) {
        let sum = 0;
        let avg = 0;
        let lo = Infinity;
        let hi = -Infinity;
        for (let k = 0; k < 4; k++) {
          const wk = w[(n * 4 + k) * HW + p];
          if (!SUBSETS[n][k]) {
            maxMissing = Math.max(maxMissing, Math.abs(wk));
            continue;
          }
          if (wk < 0 || wk > 1) outOfRange++;
          sum += wk;
          const xv = x[(n * 4 + k) * HW + p];
          avg += wk * xv;
          lo = Math.min(lo, xv);
          hi = Math.max(hi, xv);
        }
        const fv = f[n * HW + p];
        maxSumErr = Math.max(maxSumErr, Math.abs(sum - 1));
        maxAvgErr = Math.max(maxAvgErr, Math.abs(avg - fv));
        if (fv < lo - 1e-4 || fv > hi + 1e-4) outOfRange++;
      }
    }
    expect(maxMissing).toBe(0);
    expect(maxSumErr).toBeLessThan(1e-4);
    expect(maxAvgErr).toBeLessThan(1e-4);
    expect(outOfRange).toBe(0);
    // a single acquired sequence: the fused image is that sequence
    for (let k = 0; k < 4; k++) {
      const n = SUBSETS.findIndex((s) => s.join('') === [0, 1, 2, 3].map((i) => (i === k ? 1 : 0)).join(''));
      let err = 0;
      for (let p = 0; p < HW; p++) err = Math.max(err, Math.abs(f[n * HW + p] - base[k * HW + p]));
      expect(err).toBeLessThan(1e-4);
    }
  });

  it('weights depend on the image: not a fixed mixture, and a slice does not depend on its batch', async () => {
    const a = syntheticSlice(0);
    const b = syntheticSlice(9);
    const both = new Float32Array(2 * 4 * HW);
    both.set(a, 0);
    both.set(b, 4 * HW);
    const ones = new Float32Array(8).fill(1);
    const r2 = await session.run({
      input: new ort.Tensor('float32', both, [2, 4, 128, 128]),
      modality_mask: new ort.Tensor('float32', ones, [2, 4]),
    });
    const r1 = await session.run({
      input: new ort.Tensor('float32', a, [1, 4, 128, 128]),
      modality_mask: new ort.Tensor('float32', ones.subarray(0, 4), [1, 4]),
    });
    const w2 = r2.weights.data as Float32Array;
    const w1 = r1.weights.data as Float32Array;
    let batchErr = 0;
    for (let i = 0; i < 4 * HW; i++) batchErr = Math.max(batchErr, Math.abs(w2[i] - w1[i]));
    expect(batchErr).toBeLessThan(1e-4);
    // spatial variation of the FLAIR weight inside the brain of slice a
    let lo = Infinity;
    let hi = -Infinity;
    for (let p = 0; p < HW; p++) {
      if (a[p] === 0 && a[HW + p] === 0) continue;
      lo = Math.min(lo, w1[p]);
      hi = Math.max(hi, w1[p]);
    }
    expect(hi - lo).toBeGreaterThan(0.05);
  });
});
