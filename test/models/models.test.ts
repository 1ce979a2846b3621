/**
 * The committed lesion models really segment lesions: each manifest's ONNX file matches its sha256, and
 * each model, run with onnxruntime-node (cpu) on committed TEST-split phantom studies (fixtures/phantoms,
 * never seen in training or model selection), finds the known lesion and stays (nearly) silent on a study
 * with no lesion. The pre-processing is re-implemented here from models/README.md on purpose (small and
 * independent of src/), so a model and the written contract are checked against each other.
 * Thresholds come from the held-out test metrics in models/README.md (see the comments by each).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import * as ort from 'onnxruntime-node';
import { ManifestSchema, ModelManifest } from '../../src/models/manifest';

const REPO = path.resolve(__dirname, '../..');
const MODELS = path.join(REPO, 'models');
const PHANTOMS = path.join(REPO, 'fixtures/phantoms');

interface PhantomMeta {
  rows: number;
  columns: number;
  slices: number;
  pixelSpacing: [number, number];
  sliceSpacing: number;
  lesionVoxels: number;
  lesionVolumeMl: number;
  lesionSlices: number[];
  split: string;
}

interface Phantom {
  meta: PhantomMeta;
  dwi: Float32Array;
  adc: Float32Array;
  mask: Uint8Array;
}

function readU16(file: string): Float32Array {
  const b = zlib.gunzipSync(fs.readFileSync(file));
  const out = new Float32Array(b.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = b.readUInt16LE(2 * i);
  return out;
}

function loadPhantom(name: string): Phantom {
  const dir = path.join(PHANTOMS, name);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as PhantomMeta;
  const dwi = readU16(path.join(dir, 'dwi.u16.gz'));
  const adc = readU16(path.join(dir, 'adc.u16.gz'));
  const mask = new Uint8Array(zlib.gunzipSync(fs.readFileSync(path.join(dir, 'mask.u8.gz'))));
  const n = meta.rows * meta.columns * meta.slices;
  if (dwi.length !== n || adc.length !== n || mask.length !== n) throw new Error(`${name}: sizes do not match meta.json`);
  return { meta, dwi, adc, mask };
}

/** models/README.md: DWI median-foreground (t = mean, s = median of voxels > t), x = clip(v / s, 0, 10). */
function normaliseDwi(v: Float32Array): Float32Array {
  let sum = 0;
  for (const x of v) sum += x;
  const t = sum / v.length;
  const fg = Array.from(v).filter((x) => x > t).sort((a, b) => a - b);
  const s = fg.length ? fg[Math.floor(fg.length / 2)] : 1;
  return v.map((x) => Math.min(10, Math.max(0, x / s)));
}

/** models/README.md: ADC x = clip(adc / 1000, 0, 5). */
function normaliseAdc(v: Float32Array): Float32Array {
  return v.map((x) => Math.min(5, Math.max(0, x / 1000)));
}

/** Bilinear sample of slice z at fractional (r, c); 0 beyond half a pixel outside, edge-clamped inside. */
function sample(src: Float32Array, z: number, rows: number, cols: number, r: number, c: number): number {
  if (r < -0.5 || c < -0.5 || r > rows - 0.5 || c > cols - 0.5) return 0;
  const rr = Math.min(Math.max(r, 0), rows - 1);
  const cc = Math.min(Math.max(c, 0), cols - 1);
  const r0 = Math.floor(rr);
  const c0 = Math.floor(cc);
  const r1 = Math.min(r0 + 1, rows - 1);
  const c1 = Math.min(c0 + 1, cols - 1);
  const fr = rr - r0;
  const fc = cc - c0;
  const o = z * rows * cols;
  const at = (y: number, x: number) => src[o + y * cols + x];
  return (1 - fr) * ((1 - fc) * at(r0, c0) + fc * at(r0, c1)) + fr * ((1 - fc) * at(r1, c0) + fc * at(r1, c1));
}

const G = 128;
const GS = 2.0;

/** Acquired slices → 128 x 128 @ 2 mm, centred on the slice centre, acquired row/column order. */
function toGrid(v: Float32Array, m: PhantomMeta): Float32Array {
  const out = new Float32Array(m.slices * G * G);
  for (let z = 0; z < m.slices; z++)
    for (let r = 0; r < G; r++)
      for (let c = 0; c < G; c++) {
        const sr = (m.rows - 1) / 2 + ((r - (G - 1) / 2) * GS) / m.pixelSpacing[0];
        const sc = (m.columns - 1) / 2 + ((c - (G - 1) / 2) * GS) / m.pixelSpacing[1];
        out[(z * G + r) * G + c] = sample(v, z, m.rows, m.columns, sr, sc);
      }
  return out;
}

/** Model-grid probabilities → acquired slices (bilinear). */
function fromGrid(p: Float32Array, m: PhantomMeta): Float32Array {
  const out = new Float32Array(m.slices * m.rows * m.columns);
  for (let z = 0; z < m.slices; z++)
    for (let r = 0; r < m.rows; r++)
      for (let c = 0; c < m.columns; c++) {
        const gr = (G - 1) / 2 + ((r - (m.rows - 1) / 2) * m.pixelSpacing[0]) / GS;
        const gc = (G - 1) / 2 + ((c - (m.columns - 1) / 2) * m.pixelSpacing[1]) / GS;
        out[(z * m.rows + r) * m.columns + c] = sample(p, z, G, G, gr, gc);
      }
  return out;
}

function loadManifest(name: string): ModelManifest {
  return ManifestSchema.parse(JSON.parse(fs.readFileSync(path.join(MODELS, `${name}.json`), 'utf8')));
}

interface Result {
  pred: Uint8Array;
  ms: number;
}

async function segment(session: ort.InferenceSession, man: ModelManifest, ph: Phantom, present: { DWI: boolean; ADC: boolean }): Promise<Result> {
  const { meta } = ph;
  const grids: Record<string, Float32Array> = {
    DWI: toGrid(normaliseDwi(ph.dwi), meta),
    ADC: toGrid(normaliseAdc(ph.adc), meta),
  };
  const S = meta.slices;
  const ch = man.inputs.channels;
  const plane = G * G;
  const input = new Float32Array(S * ch.length * plane);
  for (let z = 0; z < S; z++)
    ch.forEach((c, i) => {
      if (!present[c.modality as 'DWI' | 'ADC']) return; // a missing modality's channels are zero
      const zz = Math.min(S - 1, Math.max(0, z + c.sliceOffset));
      input.set(grids[c.modality].subarray(zz * plane, (zz + 1) * plane), (z * ch.length + i) * plane);
    });
  const feeds: Record<string, ort.Tensor> = { [man.inputs.tensor]: new ort.Tensor('float32', input, [S, ch.length, G, G]) };
  if (man.inputs.modalityMaskTensor) {
    const mm = new Float32Array(S * 2);
    for (let z = 0; z < S; z++) {
      mm[2 * z] = present.DWI ? 1 : 0;
      mm[2 * z + 1] = present.ADC ? 1 : 0;
    }
    feeds[man.inputs.modalityMaskTensor] = new ort.Tensor('float32', mm, [S, 2]);
  }
  const t0 = process.hrtime.bigint();
  const out = await session.run(feeds);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const logits = out[man.outputs.tensor].data as Float32Array;
  expect(out[man.outputs.tensor].dims).toEqual([S, 1, G, G]);
  const prob = logits.map((l) => 1 / (1 + Math.exp(-l)));
  const onSrc = fromGrid(prob, meta);
  return { pred: Uint8Array.from(onSrc, (p) => (p >= 0.5 ? 1 : 0)), ms };
}

function dice(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i] & b[i];
    sa += a[i];
    sb += b[i];
  }
  return sa + sb === 0 ? 1 : (2 * inter) / (sa + sb);
}

const count = (a: Uint8Array) => a.reduce((s, x) => s + x, 0);

/**
 * Minimum Dice on the committed lesion phantom, per model and subset. Measured on this case (torch and
 * onnxruntime agree): unet2d-baseline 0.90, dual-encoder 0.86, shaspec-missing 0.87 / 0.84 (DWI only) / 0.83
 * (ADC only); held-out TEST means 0.85 / 0.81 / 0.80, 0.65, 0.62 (models/README.md). The bounds sit below both,
 * far above what an untrained or broken model scores (~0: all or nothing marked).
 * null: subset not checked (a/b are not meant to run on one modality; their table rows show why).
 */
const MIN_DICE: Record<string, { both: number; dwiOnly: number | null; adcOnly: number | null }> = {
  'unet2d-baseline': { both: 0.6, dwiOnly: null, adcOnly: null },
  'dual-encoder': { both: 0.6, dwiOnly: null, adcOnly: null },
  'shaspec-missing': { both: 0.6, dwiOnly: 0.5, adcOnly: 0.5 },
  // the stroke-mr default (0.4.0, real-background fine-tune): held-out phantom TEST means 0.80 / 0.59 / 0.69
  'shaspec-realbg': { both: 0.6, dwiOnly: 0.5, adcOnly: 0.5 },
};
/**
 * Largest predicted volume (mL) accepted on the no-lesion phantom: half the lesion phantom's 16.1 mL.
 * Measured on this case: unet2d-baseline 0.9 mL, dual-encoder 2.3 mL (at the skull base, slices 3-5), ShaSpec 1.1 mL;
 * on the 10 no-lesion TEST studies the models leave 0.1-10 mL on average (models/README.md), so "empty" would be a
 * claim the models do not meet. A model that marks a real part of the brain fails.
 */
const MAX_FALSE_ML = 8;

describe.each(Object.keys(MIN_DICE))('lesion model %s', (name) => {
  let man: ModelManifest;
  let session: ort.InferenceSession;
  const lesion = loadPhantom('test-1037-lesion');
  const empty = loadPhantom('test-1114-nolesion');

  beforeAll(async () => {
    man = loadManifest(name);
    session = await ort.InferenceSession.create(path.join(MODELS, man.file), { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  });
  afterAll(async () => {
    await session?.release();
  });

  it('ONNX file matches the manifest sha256 and the README I/O contract', () => {
    const sha = crypto.createHash('sha256').update(fs.readFileSync(path.join(MODELS, man.file))).digest('hex');
    expect(sha).toBe(man.sha256);
    expect(man.inputs.tensor).toBe('input');
    expect(man.inputs.channels).toEqual([
      { modality: 'DWI', sliceOffset: -1 }, { modality: 'DWI', sliceOffset: 0 }, { modality: 'DWI', sliceOffset: 1 },
      { modality: 'ADC', sliceOffset: -1 }, { modality: 'ADC', sliceOffset: 0 }, { modality: 'ADC', sliceOffset: 1 },
    ]);
    expect(man.inputs.grid).toEqual({ size: [128, 128], spacingMm: 2 });
    expect(man.outputs.tensor).toBe('logits');
    expect(session.inputNames).toEqual(name.startsWith('shaspec-') ? ['input', 'modality_mask'] : ['input']);
    expect(session.outputNames).toEqual(['logits']);
    expect(lesion.meta.split).toBe('test');
    expect(empty.meta.split).toBe('test');
  });

  it('finds the known lesion in a held-out DWI+ADC phantom', async () => {
    const { pred, ms } = await segment(session, man, lesion, { DWI: true, ADC: true });
    const d = dice(pred, lesion.mask);
    process.stdout.write(`${name} DWI+ADC: Dice ${d.toFixed(3)} (${lesion.meta.slices} slices, ${ms.toFixed(0)} ms)\n`);
    expect(d).toBeGreaterThan(MIN_DICE[name].both);
    // The found lesion lies on the known lesion slices, not elsewhere.
    const S = lesion.meta.slices;
    const per = lesion.meta.rows * lesion.meta.columns;
    for (let z = 0; z < S; z++) {
      const onSlice = count(pred.subarray(z * per, (z + 1) * per));
      if (!lesion.meta.lesionSlices.includes(z) && !lesion.meta.lesionSlices.includes(z - 1) && !lesion.meta.lesionSlices.includes(z + 1))
        expect(onSlice).toBeLessThan(20);
    }
  });

  it('stays nearly empty on a held-out phantom with no lesion', async () => {
    const { pred } = await segment(session, man, empty, { DWI: true, ADC: true });
    const ml = (count(pred) * empty.meta.pixelSpacing[0] * empty.meta.pixelSpacing[1] * empty.meta.sliceSpacing) / 1000;
    expect(ml).toBeLessThan(MAX_FALSE_ML);
  });

  // Single-modality checks only for the model meant to run on one modality (the node routes DWI-only and
  // ADC-only studies to it); a/b score ~0 there by design (zero channels), see models/README.md.
  const single = MIN_DICE[name];
  if (single.dwiOnly !== null) {
    const min = single.dwiOnly;
    it('finds the lesion from DWI alone (ADC missing)', async () => {
      const { pred } = await segment(session, man, lesion, { DWI: true, ADC: false });
      expect(dice(pred, lesion.mask)).toBeGreaterThan(min);
    });
  }
  if (single.adcOnly !== null) {
    const min = single.adcOnly;
    it('finds the lesion from ADC alone (DWI missing)', async () => {
      const { pred } = await segment(session, man, lesion, { DWI: false, ADC: true });
      expect(dice(pred, lesion.mask)).toBeGreaterThan(min);
    });
  }
});
