/**
 * The node's DDIM sampler (src/pipelines/brain-tumour-mr/synthesis.ts) against the training code's sampler
 * (models/training/m2dn_nets.py ddim_sample):
 *  - on a tiny random-weight stand-in with the brats-m2dn interface (test/fixtures/m2dn-tiny, made by its make.py
 *    with the Python sampler): always runs;
 *  - on the trained brats-m2dn and the reference vector its training helper saved (models/training/out/m2dn/,
 *    the noise read from the file): runs when those exist.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import {
  cosineAlphasCumprod,
  ddimSample,
  ddimTimesteps,
  gaussianNoise,
  readSampler,
  SynthesisBudgetExceeded,
  timestepsFor,
  type RunModel,
} from '../../src/pipelines/brain-tumour-mr/synthesis';
import { fuse } from '../../src/pipelines/brain-tumour-mr/fusion';
import type { ModelManifest } from '../../src/models/manifest';

const TINY = path.resolve(__dirname, '../fixtures/m2dn-tiny');

function runner(session: ort.InferenceSession): RunModel {
  return async (feeds) => {
    const f: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) f[k] = new ort.Tensor('float32', v.data, v.dims);
    const out = await session.run(f);
    const r: Record<string, { data: Float32Array; dims: number[] }> = {};
    for (const [k, t] of Object.entries(out)) r[k] = { data: t.data as Float32Array, dims: [...t.dims] };
    return r;
  };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('DDIM schedule and timesteps', () => {
  const ref = JSON.parse(fs.readFileSync(path.join(TINY, 'reference.json'), 'utf8'));
  test('cosine alphas_cumprod equals the training code (closed form)', () => {
    const ab = cosineAlphasCumprod(ref.trainSteps, ref.cosineS);
    for (const [t, v] of Object.entries(ref.alphasCumprodSample as Record<string, number>)) expect(ab[Number(t)]).toBeCloseTo(v, 12);
    expect(ab[ref.trainSteps - 1]).toBeLessThan(1e-8);
  });
  test('timesteps for other step counts as numpy round(linspace(T-1, 0, steps))', () => {
    expect(ddimTimesteps(ref.steps, ref.trainSteps)).toEqual(ref.timesteps);
    expect(ddimTimesteps(15, ref.trainSteps)).toEqual(ref.timesteps_15);
    expect(ddimTimesteps(20, ref.trainSteps)).toEqual(ref.timesteps_20);
    expect(ddimTimesteps(25, ref.trainSteps)).toEqual(ref.timesteps_25);
  });
  test('readSampler follows the manifest block and refuses what it cannot follow', () => {
    const base = { name: 'm', sampler: { type: 'ddim', eta: 0, trainSteps: 1000, schedule: 'cosine', s: 0.008, steps: 3, timesteps: [999, 500, 0] } };
    const s = readSampler(base as unknown as ModelManifest);
    expect(s.timesteps).toEqual([999, 500, 0]);
    expect(s.alphasCumprod[500]).toBeCloseTo(cosineAlphasCumprod(1000, 0.008)[500], 15);
    expect(timestepsFor(s)).toEqual([999, 500, 0]);
    expect(timestepsFor(s, 10)).toEqual(ddimTimesteps(10, 1000));
    const bad = (patch: Record<string, unknown>) => () => readSampler({ ...base, sampler: { ...base.sampler, ...patch } } as unknown as ModelManifest);
    expect(bad({ eta: 1 })).toThrow(/eta/);
    expect(bad({ type: 'ddpm' })).toThrow(/ddim/);
    expect(bad({ s: undefined })).toThrow(/offset s/);
    expect(bad({ timesteps: [0, 500, 999] })).toThrow(/decreasing/);
    const lin = readSampler({ ...base, sampler: { ...base.sampler, schedule: 'linear', betaStart: 1e-4, betaEnd: 0.02 } } as unknown as ModelManifest);
    expect(lin.alphasCumprod[0]).toBeCloseTo(1 - 1e-4, 12);
  });
  test('seeded noise: deterministic, standard normal', () => {
    const a = gaussianNoise(20001, 7);
    expect(Array.from(gaussianNoise(20001, 7).subarray(0, 50))).toEqual(Array.from(a.subarray(0, 50)));
    expect(maxAbsDiff(gaussianNoise(100, 8), a.subarray(0, 100))).toBeGreaterThan(0.1);
    let s = 0;
    let s2 = 0;
    for (const v of a) {
      s += v;
      s2 += v * v;
    }
    expect(Math.abs(s / a.length)).toBeLessThan(0.03);
    expect(Math.abs(s2 / a.length - 1)).toBeLessThan(0.05);
  });
});

describe('DDIM sampler vs the Python sampler (tiny stand-in model)', () => {
  const ref = JSON.parse(fs.readFileSync(path.join(TINY, 'reference.json'), 'utf8'));
  let session: ort.InferenceSession;
  beforeAll(async () => {
    session = await ort.InferenceSession.create(path.join(TINY, 'tiny.onnx'), { intraOpNumThreads: 1 });
  });
  afterAll(async () => session?.release());

  const input = () => ({
    xAcq: Float32Array.from(ref.x_acq),
    maskRow: ref.maskRow as number[],
    brain: Float32Array.from(ref.brain),
    n: ref.N,
    h: ref.H,
    w: ref.W,
    noise: Float32Array.from(ref.noise),
  });
  const opts = () => ({
    timesteps: ref.timesteps as number[],
    alphasCumprod: cosineAlphasCumprod(ref.trainSteps, ref.cosineS),
    tensors: { x: 'x_t', mask: 'modality_mask', t: 't', out: 'x0' },
  });

  test('same result as ddim_sample (same noise), whatever the batch size', async () => {
    for (const batch of [1, 2]) {
      const out = await ddimSample(runner(session), input(), { ...opts(), batch });
      const d = maxAbsDiff(out, ref.out);
      expect(d).toBeLessThan(1e-4);
    }
    // without the schedule (wrong alphas) the result differs: the test can fail
    const wrong = await ddimSample(runner(session), input(), { ...opts(), alphasCumprod: cosineAlphasCumprod(ref.trainSteps, 0.1) });
    expect(maxAbsDiff(wrong, ref.out)).toBeGreaterThan(1e-2);
  });

  test('acquired channels are the acquired images, 0 outside the brain', async () => {
    const out = await ddimSample(runner(session), input(), opts());
    const plane = ref.H * ref.W;
    for (let s = 0; s < ref.N; s++) {
      for (let c = 0; c < 4; c++) {
        for (let p = 0; p < plane; p++) {
          const i = (s * 4 + c) * plane + p;
          if (!ref.brain[s * plane + p]) expect(out[i]).toBe(0);
          else if (ref.maskRow[c]) expect(out[i]).toBe(Math.fround(ref.x_acq[i]));
        }
      }
    }
  });

  test('past the deadline: SynthesisBudgetExceeded, nothing returned', async () => {
    const start = performance.now();
    await expect(ddimSample(runner(session), input(), { ...opts(), deadline: { at: start + 0.001, budgetMs: 0.001, start } })).rejects.toBeInstanceOf(SynthesisBudgetExceeded);
  });
});

// The trained brats-m2dn and the reference vector its training helper saved (export_m2dn.py: synthetic phantom input,
// FLAIR and T1c missing, seeded numpy noise; ref.json + float32 .bin files), when both are present.
const MODELS = path.resolve(__dirname, '../../models');
const REF_DIR = path.resolve(MODELS, 'training/out/m2dn/reference');
const haveM2dn = fs.existsSync(path.join(MODELS, 'brats-m2dn.json')) && fs.existsSync(path.join(REF_DIR, 'ref.json'));
const bin = (f: string): Float32Array => {
  const b = fs.readFileSync(path.join(REF_DIR, f));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
(haveM2dn ? describe : describe.skip)('trained brats-m2dn vs its training reference vector', () => {
  test('the manifest sampler + the TS sampler reproduce the Python DDIM output (the noise read from the file)', async () => {
    const man = JSON.parse(fs.readFileSync(path.join(MODELS, 'brats-m2dn.json'), 'utf8'));
    const ref = JSON.parse(fs.readFileSync(path.join(REF_DIR, 'ref.json'), 'utf8'));
    const spec = readSampler(man);
    expect(spec.timesteps).toEqual(ref.sampler.timesteps);
    (ref.sampler.alphasCumprodAtTimesteps as number[]).forEach((v, i) => expect(spec.alphasCumprod[spec.timesteps[i]]).toBeCloseTo(v, 10));
    const session = await ort.InferenceSession.create(path.join(MODELS, man.file), { intraOpNumThreads: 1 });
    try {
      const [n, , h, w] = ref.shape as number[];
      const tensors = { x: man.inputs.tensor, mask: man.inputs.modalityMaskTensor, t: man.inputs.timestepTensor ?? 't', out: man.outputs.tensor };
      const input = { xAcq: bin('x_acq.bin'), maskRow: ref.modalityMask as number[], brain: bin('brain.bin'), n, h, w, noise: bin('noise.bin') };
      // one network call (t = timesteps[0]) as the reference's step0_x0
      const x0 = await ddimSample(runner(session), { ...input, brain: new Float32Array(n * h * w).fill(1) }, { timesteps: [spec.timesteps[0]], alphasCumprod: spec.alphasCumprod, tensors });
      const step0 = bin('step0_x0.bin');
      const miss = (ref.modalityMask as number[]).map((m, c) => (m ? -1 : c)).filter((c) => c >= 0);
      let d0 = 0;
      for (const c of miss) for (let p = 0; p < h * w; p++) d0 = Math.max(d0, Math.abs(x0[c * h * w + p] - step0[c * h * w + p]));
      const out = await ddimSample(runner(session), input, { timesteps: spec.timesteps, alphasCumprod: spec.alphasCumprod, tensors });
      const d = maxAbsDiff(out, bin('final.bin'));
      console.info(`brats-m2dn TS vs Python DDIM (${spec.timesteps.length} steps): step 0 max |diff| ${d0.toExponential(2)}, final max |diff| ${d.toExponential(2)}`);
      expect(d0).toBeLessThan(1e-3);
      expect(d).toBeLessThan(2e-3);
    } finally {
      await session.release();
    }
  });
});

// keep the fusion runner honest on a hand-made model-free check: a fake run that returns the mean of the acquired
test('fusion runner: brain mask, missing channels zeroed in the input, mean weights', async () => {
  const n = 2;
  const h = 4;
  const w = 4;
  const plane = h * w;
  const x = new Float32Array(n * 4 * plane).map((_, i) => (i % 13) - 6);
  const brain = new Uint8Array(n * plane).map((_, i) => (i % 5 ? 1 : 0));
  const maskRow = [1, 0, 0, 1];
  const run: RunModel = async (feeds) => {
    const xin = feeds.input.data;
    const k = feeds.input.dims[0];
    for (let s = 0; s < k; s++) for (let p = 0; p < plane; p++) expect(xin[(s * 4 + 1) * plane + p]).toBe(0); // missing T1 zeroed
    const fused = new Float32Array(k * plane);
    const weights = new Float32Array(k * 4 * plane);
    for (let s = 0; s < k; s++) {
      for (let p = 0; p < plane; p++) {
        fused[s * plane + p] = 0.25 * xin[(s * 4) * plane + p] + 0.75 * xin[(s * 4 + 3) * plane + p];
        weights[(s * 4) * plane + p] = 0.25;
        weights[(s * 4 + 3) * plane + p] = 0.75;
      }
    }
    return { fused: { data: fused, dims: [k, 1, h, w] }, weights: { data: weights, dims: [k, 4, h, w] } };
  };
  const r = await fuse(run, { x, maskRow, brain, n, h, w }, { tensors: { input: 'input', mask: 'modality_mask', fused: 'fused', weights: 'weights' }, batch: 1 });
  for (let s = 0; s < n; s++) {
    for (let p = 0; p < plane; p++) {
      const i = s * plane + p;
      const want = brain[i] ? Math.fround(0.25 * x[(s * 4) * plane + p] + 0.75 * x[(s * 4 + 3) * plane + p]) : 0;
      expect(r.fused[i]).toBeCloseTo(want, 5);
    }
  }
  expect(r.meanWeights).toEqual([0.25, 0, 0, 0.75]);
});
