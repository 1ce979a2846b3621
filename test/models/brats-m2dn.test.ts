/**
 * The committed sequence-synthesis model (models/brats-m2dn, issue 15) matches its contract in models/README.md
 * "Sequence synthesis (M2DN)": the ONNX file matches the manifest's sha256 and byte count; inputs `x_t`
 * [N, 4, 128, 128], `modality_mask` [N, 4], `t` [N] and output `x0` [N, 4, 128, 128] with a dynamic batch axis; the
 * manifest's sampler block is a DDIM (eta 0) whose alphas_cumprod follow the stated cosine schedule exactly; and the
 * sampler written in the README, run here with onnxruntime-node, reproduces the reference vector that the training
 * code (models/training/export_m2dn.py, m2dn_nets.ddim_sample) wrote for a synthetic phantom and fixed noise.
 * The TEST metrics come from models/training/eval_synthesis.py on BraTS cases that are never committed.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { ManifestSchema } from '../../src/models/manifest';

const MODELS = path.resolve(__dirname, '../../models');
const REF = path.join(MODELS, 'training/out/m2dn/reference');
const P = 128 * 128;

interface Sampler {
  type: string;
  eta: number;
  trainSteps: number;
  schedule: string;
  scheduleParameters: { s: number };
  steps: number;
  timesteps: number[];
  alphasCumprodAtTimesteps: number[];
}

const manifest = JSON.parse(fs.readFileSync(path.join(MODELS, 'brats-m2dn.json'), 'utf8'));
const ref = JSON.parse(fs.readFileSync(path.join(REF, 'ref.json'), 'utf8'));

function readF32(name: string): Float32Array {
  const b = fs.readFileSync(path.join(REF, name));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** alphas_cumprod[t] = f(t + 1) / f(0), f(u) = cos(((u / T) + s) / (1 + s) * pi / 2)^2 (manifest scheduleParameters). */
function alphaCumprod(t: number, T: number, s: number): number {
  const f = (u: number) => Math.cos(((u / T + s) / (1 + s)) * (Math.PI / 2)) ** 2;
  return Math.min(1, Math.max(0, f(t + 1) / f(0)));
}

let session: ort.InferenceSession;
beforeAll(async () => {
  session = await ort.InferenceSession.create(path.join(MODELS, manifest.file), { intraOpNumThreads: 1 });
}, 60000);

describe('brats-m2dn manifest and file', () => {
  it('matches the ONNX file and names the contract tensors', () => {
    const data = fs.readFileSync(path.join(MODELS, manifest.file));
    expect(crypto.createHash('sha256').update(data).digest('hex')).toBe(manifest.sha256);
    expect(data.length).toBe(manifest.bytes);
    expect(manifest.task).toBe('mr-sequence-synthesis');
    const parsed = ManifestSchema.safeParse(manifest);
    expect(parsed.success).toBe(true);
    expect(manifest.inputs.tensor).toBe('x_t');
    expect(manifest.inputs.modalityMaskOrder).toEqual(['FLAIR', 'T1', 'T1c', 'T2']);
    expect(manifest.outputs.tensor).toBe('x0');
    expect(session.inputNames).toEqual(['x_t', 'modality_mask', 't']);
    expect(session.outputNames).toEqual(['x0']);
    expect(manifest.metrics.split).toBe('test');
    expect(['acquired-only', 'with-synthesis']).toContain(manifest.metrics.downstream.bestRoute);
  });

  it('has a DDIM sampler block whose alphas follow the stated cosine schedule', () => {
    const s: Sampler = manifest.sampler;
    expect(s.type).toBe('ddim');
    expect(s.eta).toBe(0);
    expect(s.trainSteps).toBe(1000);
    expect(s.schedule).toBe('cosine');
    expect(s.steps).toBeGreaterThanOrEqual(10);
    expect(s.steps).toBeLessThanOrEqual(25);
    expect(s.timesteps.length).toBe(s.steps);
    expect(s.timesteps[0]).toBe(s.trainSteps - 1);
    expect(s.timesteps[s.steps - 1]).toBe(0);
    for (let i = 1; i < s.steps; i++) expect(s.timesteps[i]).toBeLessThan(s.timesteps[i - 1]);
    s.timesteps.forEach((t, i) => {
      expect(s.alphasCumprodAtTimesteps[i]).toBeCloseTo(alphaCumprod(t, s.trainSteps, s.scheduleParameters.s), 10);
    });
    expect(ref.sampler.timesteps).toEqual(s.timesteps);
    expect(ref.onnxSha256).toBe(manifest.sha256);
  });
});

describe('brats-m2dn sampler against the training code reference vector', () => {
  it('dynamic batch: two different slices in one call', async () => {
    const xa = readF32('x_acq.bin');
    const x = new Float32Array(8 * P);
    x.set(xa, 0);
    x.set(readF32('noise.bin'), 4 * P);
    const r = await session.run({
      x_t: new ort.Tensor('float32', x, [2, 4, 128, 128]),
      modality_mask: new ort.Tensor('float32', Float32Array.from([0, 1, 0, 1, 1, 1, 0, 0]), [2, 4]),
      t: new ort.Tensor('float32', Float32Array.from([500, 10]), [2]),
    });
    expect(r.x0.dims).toEqual([2, 4, 128, 128]);
  }, 60000);

  it('reproduces the first step and the final sample (README algorithm)', async () => {
    const s: Sampler = manifest.sampler;
    const mask: number[] = ref.modalityMask;
    const xa = readF32('x_acq.bin');
    const brain = readF32('brain.bin');
    let x = readF32('noise.bin');
    let x0: Float32Array = new Float32Array(0);
    let step0: Float32Array = new Float32Array(0);
    const ab = s.timesteps.map((t) => alphaCumprod(t, s.trainSteps, s.scheduleParameters.s));
    for (let i = 0; i < s.timesteps.length; i++) {
      const xin = new Float32Array(4 * P);
      for (let c = 0; c < 4; c++) for (let p = 0; p < P; p++) xin[c * P + p] = mask[c] ? xa[c * P + p] : x[c * P + p];
      const r = await session.run({
        x_t: new ort.Tensor('float32', xin, [1, 4, 128, 128]),
        modality_mask: new ort.Tensor('float32', Float32Array.from(mask), [1, 4]),
        t: new ort.Tensor('float32', Float32Array.from([s.timesteps[i]]), [1]),
      });
      x0 = r.x0.data as Float32Array;
      if (i === 0) step0 = Float32Array.from(x0);
      if (i + 1 < s.timesteps.length) {
        const nx = new Float32Array(4 * P);
        for (let k = 0; k < 4 * P; k++) {
          const eps = (x[k] - Math.sqrt(ab[i]) * x0[k]) / Math.sqrt(Math.max(1 - ab[i], 1e-12));
          nx[k] = Math.sqrt(ab[i + 1]) * x0[k] + Math.sqrt(1 - ab[i + 1]) * eps;
        }
        x = nx;
      }
    }
    const expStep0 = readF32('step0_x0.bin');
    const expFinal = readF32('final.bin');
    let d0 = 0;
    let df = 0;
    let missingNonZero = 0;
    for (let c = 0; c < 4; c++) {
      for (let p = 0; p < P; p++) {
        const k = c * P + p;
        const fin = (mask[c] ? xa[k] : x0[k]) * brain[p];
        d0 = Math.max(d0, Math.abs(step0[k] - expStep0[k]));
        df = Math.max(df, Math.abs(fin - expFinal[k]));
        if (!mask[c] && brain[p] && fin !== 0) missingNonZero++;
      }
    }
    expect(d0).toBeLessThan(1e-3);
    expect(df).toBeLessThan(1e-2);
    expect(missingNonZero).toBeGreaterThan(1000); // the missing sequences were really synthesised
  }, 120000);
});
