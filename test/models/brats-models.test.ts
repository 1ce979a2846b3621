/**
 * The committed brain-tumour models (models/brats-shaspec, models/brats-unet4) match the contract in
 * models/README.md "Brain tumour models": the ONNX file matches the manifest's sha256 and byte count; inputs
 * `input` [N, 4, 128, 128] + `modality_mask` [N, 4] (FLAIR, T1, T1c, T2), output `logits` [N, 4, 128, 128] with a
 * dynamic batch axis; a slice's output does not depend on the rest of its batch (BatchNorm folded, eval mode);
 * ShaSpec really uses the modality mask, the baseline ignores it; an empty slice (all zero = outside the brain)
 * gives background. The test set metrics themselves come from models/training/eval_brats.py on the BraTS TEST
 * cases, which are never committed.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';

const MODELS = path.resolve(__dirname, '../../models');
const SEQ = ['FLAIR', 'T1', 'T1c', 'T2'];
const HW = 128 * 128;

interface BratsManifest {
  name: string;
  file: string;
  sha256: string;
  bytes: number;
  task: string;
  inputs: {
    tensor: string;
    modalityMaskTensor: string;
    modalityMaskOrder: string[];
    channels: { modality: string; sliceOffset: number }[];
    grid: { size: [number, number]; spacingMm: number };
    normalisation: Record<string, { method: string; clip: [number, number] }>;
    required?: string[];
    anyOf?: string[];
  };
  outputs: { tensor: string; labels: { value: number }[] };
  metrics: Record<string, unknown>;
}

/** A synthetic 'brain' slice: an ellipse of smooth z-scored texture, a bright FLAIR/T2 blob with an enhancing rim. */
function syntheticSlice(): Float32Array {
  const x = new Float32Array(4 * HW);
  for (let r = 0; r < 128; r++) {
    for (let c = 0; c < 128; c++) {
      const inBrain = ((r - 64) / 52) ** 2 + ((c - 64) / 42) ** 2 < 1;
      if (!inBrain) continue;
      const d = Math.hypot(r - 50, c - 75);
      for (let k = 0; k < 4; k++) {
        let v = 0.5 * Math.sin(r / 5 + k) * Math.cos(c / 7 - k);
        if (d < 14 && (k === 0 || k === 3)) v += 2.5;
        if (k === 2 && d > 5 && d < 8) v += 3;
        if (k === 1 && d < 8) v -= 1.5;
        x[k * HW + r * 128 + c] = v;
      }
    }
  }
  return x;
}

function maskInput(x: Float32Array, m: number[]): Float32Array {
  const out = new Float32Array(x);
  for (let k = 0; k < 4; k++) if (!m[k]) out.fill(0, k * HW, (k + 1) * HW);
  return out;
}

async function run(s: ort.InferenceSession, xs: Float32Array[], ms: number[][]): Promise<Float32Array> {
  const n = xs.length;
  const x = new Float32Array(n * 4 * HW);
  xs.forEach((v, i) => x.set(v, i * 4 * HW));
  const r = await s.run({
    input: new ort.Tensor('float32', x, [n, 4, 128, 128]),
    modality_mask: new ort.Tensor('float32', Float32Array.from(ms.flat()), [n, 4]),
  });
  expect(r.logits.dims).toEqual([n, 4, 128, 128]);
  return r.logits.data as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function backgroundFraction(logits: Float32Array, slice: number): number {
  let bg = 0;
  const o = slice * 4 * HW;
  for (let p = 0; p < HW; p++) {
    let best = 0;
    for (let k = 1; k < 4; k++) if (logits[o + k * HW + p] > logits[o + best * HW + p]) best = k;
    if (best === 0) bg++;
  }
  return bg / HW;
}

describe.each(['brats-shaspec', 'brats-unet4'])('%s', (name) => {
  const man = JSON.parse(fs.readFileSync(path.join(MODELS, `${name}.json`), 'utf8')) as BratsManifest;
  let session: ort.InferenceSession;

  beforeAll(async () => {
    session = await ort.InferenceSession.create(path.join(MODELS, man.file), { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  });

  it('manifest: file, sha256, bytes and the contract I/O', () => {
    const buf = fs.readFileSync(path.join(MODELS, man.file));
    expect(crypto.createHash('sha256').update(buf).digest('hex')).toBe(man.sha256);
    expect(buf.length).toBe(man.bytes);
    expect(man.task).toBe('brain-tumour-segmentation');
    expect(man.inputs.tensor).toBe('input');
    expect(man.inputs.modalityMaskTensor).toBe('modality_mask');
    expect(man.inputs.modalityMaskOrder).toEqual(SEQ);
    expect(man.inputs.channels.map((c) => c.modality)).toEqual(SEQ);
    expect(man.inputs.grid).toMatchObject({ size: [128, 128], spacingMm: 1.875 });
    for (const s of SEQ) expect(man.inputs.normalisation[s]).toMatchObject({ method: 'zscore-brain', clip: [-5, 5] });
    expect(man.outputs.tensor).toBe('logits');
    expect(man.outputs.labels.map((l) => l.value)).toEqual([1, 2, 3]);
    if (name === 'brats-unet4') expect(man.inputs.required).toEqual(SEQ);
    else expect(man.inputs.anyOf).toEqual(SEQ);
    expect(man.metrics).toHaveProperty('split', 'test');
    expect(session.inputNames).toEqual(['input', 'modality_mask']);
    expect(session.outputNames).toEqual(['logits']);
  });

  it('dynamic batch; a slice does not depend on its batch; an empty slice is background', async () => {
    const x = syntheticSlice();
    const all = [1, 1, 1, 1];
    const zero = new Float32Array(4 * HW);
    const one = await run(session, [x], [all]);
    const three = await run(session, [zero, x, zero], [all, all, all]);
    expect(maxAbsDiff(one, three.subarray(4 * HW, 8 * HW))).toBeLessThan(1e-3);
    expect(backgroundFraction(three, 0)).toBeGreaterThan(0.99);
    for (const v of one) expect(Number.isFinite(v)).toBe(true);
  });

  it(name === 'brats-shaspec' ? 'uses modality_mask (FLAIR only differs from all four)' : 'ignores modality_mask', async () => {
    const x = syntheticSlice();
    const all = await run(session, [x], [[1, 1, 1, 1]]);
    if (name === 'brats-shaspec') {
      const fl = maskInput(x, [1, 0, 0, 0]);
      const flairOnly = await run(session, [fl], [[1, 0, 0, 0]]);
      const flairMaskAll = await run(session, [fl], [[1, 1, 1, 1]]);
      // a missing sequence's feature comes from the present shared features, not from its zero channel
      expect(maxAbsDiff(flairOnly, flairMaskAll)).toBeGreaterThan(1e-2);
      expect(maxAbsDiff(flairOnly, all)).toBeGreaterThan(1e-2);
    } else {
      const masked = await run(session, [x], [[1, 0, 0, 0]]);
      expect(maxAbsDiff(all, masked)).toBe(0);
    }
  });
});
