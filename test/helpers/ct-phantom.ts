/**
 * CT phantoms (models/training/phantoms.py generate_ct_study / write_ct_fixture) and the image metrics
 * of the CT→DWI synthesis (models/README.md): each volume is first divided by its own median over the brain
 * (a DWI's absolute scale is arbitrary, the lesion model normalises it away the same way, and the MR coil
 * bias that scales the true DWI is not predictable from a CT), then MSE, PSNR and SSIM over the brain on
 * clip(x / 3, 0, 1) (3 = three times the brain median), SSIM with a 7x7 uniform window, K1 0.01, K2 0.03,
 * data range 1, mirrored edges, per slice, averaged over the brain pixels.
 * Used by the model test, the end-to-end test and models/training/eval_ct2dwi.ts (the table's numbers).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import type { OrthancHandle } from '../harness/orthanc';
import type { StudyJob } from '../../src/jobs/queue';
import { waitFor, type TestNode } from './node';
import { writeSeries, type StudyContext, type WrittenSeries } from './series-writer';

export interface CtPhantomMeta {
  modality: 'CT';
  rows: number;
  columns: number;
  slices: number;
  pixelSpacing: [number, number];
  sliceThickness: number;
  sliceSpacing: number;
  convolutionKernel: string;
  imageOrientationPatient: [number, number, number, number, number, number];
  imagePositionPatientFirst: [number, number, number];
  lesionVoxels: number;
  lesionVolumeMl: number;
  lesionSlices: number[];
  seed: number;
  split: string;
  /** Measured by models/training/eval_ct2dwi.ts through the node's code path (fixtures only). */
  expected?: Record<string, { psnr: number; ssim: number; mse: number; diceSynthetic?: number; diceTrue?: number }>;
  [k: string]: unknown;
}

export interface CtPhantom {
  name: string;
  meta: CtPhantomMeta;
  /** HU */
  ct: Int16Array;
  /** The true DWI on the CT grid, 1000 × y. */
  dwiTrue: Uint16Array;
  mask: Uint8Array;
  brain: Uint8Array;
}

function gz(file: string): Buffer {
  return zlib.gunzipSync(fs.readFileSync(file));
}

export function loadCtPhantom(dir: string): CtPhantom {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as CtPhantomMeta;
  const n = meta.rows * meta.columns * meta.slices;
  const ctb = gz(path.join(dir, 'ct.i16.gz'));
  const ct = new Int16Array(n);
  for (let i = 0; i < n; i++) ct[i] = ctb.readInt16LE(2 * i);
  const db = gz(path.join(dir, 'dwi-true.u16.gz'));
  const dwiTrue = new Uint16Array(n);
  for (let i = 0; i < n; i++) dwiTrue[i] = db.readUInt16LE(2 * i);
  const mask = new Uint8Array(gz(path.join(dir, 'mask.u8.gz')));
  const brain = new Uint8Array(gz(path.join(dir, 'brain.u8.gz')));
  if (ctb.length !== 2 * n || db.length !== 2 * n || mask.length !== n || brain.length !== n) throw new Error(`${dir}: sizes do not match meta.json`);
  return { name: path.basename(dir), meta, ct, dwiTrue, mask, brain };
}

/** Peak of the compared range, in multiples of the brain median. */
export const DWI_PEAK = 3;

function brainMedian(v: ArrayLike<number>, brain: ArrayLike<number>): number {
  const vals: number[] = [];
  for (let i = 0; i < v.length; i++) if (brain[i]) vals.push(v[i]);
  vals.sort((a, b) => a - b);
  return vals.length ? vals[Math.floor(vals.length / 2)] : 1;
}

/** Mirror index into [0, n) (scipy mode "reflect": d c b a | a b c d | d c b a). */
function reflect(i: number, n: number): number {
  while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - i - 1;
  return i;
}

function uniform7(src: Float64Array, rows: number, cols: number): Float64Array {
  const tmp = new Float64Array(src.length);
  const out = new Float64Array(src.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let s = 0;
      for (let k = -3; k <= 3; k++) s += src[r * cols + reflect(c + k, cols)];
      tmp[r * cols + c] = s / 7;
    }
  }
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let s = 0;
      for (let k = -3; k <= 3; k++) s += tmp[reflect(r + k, rows) * cols + c];
      out[r * cols + c] = s / 7;
    }
  }
  return out;
}

export interface ImageMetrics {
  mse: number;
  psnr: number;
  ssim: number;
  brainVoxels: number;
}

/** MSE, PSNR and mean SSIM over the brain voxels of two DWI volumes on the same grid (each over its own brain median). */
export function dwiMetrics(pred: ArrayLike<number>, truth: ArrayLike<number>, brain: ArrayLike<number>, rows: number, cols: number): ImageMetrics {
  const plane = rows * cols;
  const slices = Math.round(truth.length / plane);
  const c1 = 0.01 ** 2;
  const c2 = 0.03 ** 2;
  let se = 0;
  let n = 0;
  let ssimSum = 0;
  const sp = brainMedian(pred, brain) || 1;
  const st = brainMedian(truth, brain) || 1;
  const normP = (v: number) => Math.min(1, Math.max(0, v / sp / DWI_PEAK));
  const normT = (v: number) => Math.min(1, Math.max(0, v / st / DWI_PEAK));
  for (let z = 0; z < slices; z++) {
    const o = z * plane;
    let any = false;
    for (let i = 0; i < plane; i++) if (brain[o + i]) any = true;
    if (!any) continue;
    const a = new Float64Array(plane);
    const b = new Float64Array(plane);
    for (let i = 0; i < plane; i++) {
      a[i] = normP(pred[o + i]);
      b[i] = normT(truth[o + i]);
    }
    const ab = a.map((v, i) => v * b[i]);
    const aa = a.map((v) => v * v);
    const bb = b.map((v) => v * v);
    const [ma, mb, mab, maa, mbb] = [a, b, ab, aa, bb].map((x) => uniform7(x, rows, cols));
    for (let i = 0; i < plane; i++) {
      if (!brain[o + i]) continue;
      const d = a[i] - b[i];
      se += d * d;
      n++;
      const va = maa[i] - ma[i] * ma[i];
      const vb = mbb[i] - mb[i] * mb[i];
      const cov = mab[i] - ma[i] * mb[i];
      ssimSum += ((2 * ma[i] * mb[i] + c1) * (2 * cov + c2)) / ((ma[i] * ma[i] + mb[i] * mb[i] + c1) * (va + vb + c2));
    }
  }
  const mse = n ? se / n : NaN;
  return { mse, psnr: 10 * Math.log10(1 / Math.max(mse, 1e-12)), ssim: n ? ssimSum / n : NaN, brainVoxels: n };
}

export function dice(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let inter = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ? 1 : 0;
    const y = b[i] ? 1 : 0;
    inter += x & y;
    sa += x;
    sb += y;
  }
  return sa + sb ? (2 * inter) / (sa + sb) : 1;
}

/** The CT phantom as a DICOM CT series of one study, instances in shuffled order. */
export function writeCtPhantomSeries(ph: CtPhantom, ctx: StudyContext, seriesDescription: string): WrittenSeries {
  const m = ph.meta;
  return writeSeries(
    {
      kind: 'CT', rows: m.rows, columns: m.columns, slices: m.slices, pixelSpacing: m.pixelSpacing,
      sliceThickness: m.sliceThickness, sliceSpacing: m.sliceSpacing, imageOrientationPatient: m.imageOrientationPatient,
      imagePositionPatientFirst: m.imagePositionPatientFirst, data: ph.ct, seriesDescription, instanceOrder: 'shuffled',
    },
    ctx,
  );
}

/**
 * Stores the series in Orthanc, has Orthanc C-STORE everything it holds to its modality NODE, waits
 * for the node's first job to finish and for its results to be sent; returns that job.
 */
export async function processThroughOrthanc(pacs: OrthancHandle, t: TestNode, series: WrittenSeries, timeoutMs: number): Promise<StudyJob> {
  for (const f of series.files) await pacs.uploadFile(f.part10);
  await pacs.storeToModality('NODE', await pacs.listInstances());
  await waitFor(async () => (await t.node.queue.list({ states: ['done', 'not_processed', 'failed', 'dead'] })).length >= 1, timeoutMs, 'CT job finished');
  await (t.node as unknown as { egress: { sendNow(): Promise<void> } }).egress.sendNow();
  return (await t.node.queue.list())[0];
}
