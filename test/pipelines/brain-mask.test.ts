/**
 * MR brain mask (src/pipelines/brain-tumour-mr/brain-mask.ts): a synthetic head, Colin27 against its
 * ch2bet mask (Debian mricron-data) at 1 mm and at 5 mm slices, one BraTS case (already skull-stripped:
 * the mask must be the non-zero region) and the real Philips heads by volume. Real data are read from
 * where they lie and the tests skip when absent; no patient attribute is printed.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { brainMaskMr, distanceToOutside } from '../../src/pipelines/brain-tumour-mr/brain-mask';
import { assembleFromHeaders, readStudyHeaders } from '../../src/study';
import { commonGrid } from '../../src/study/grid';
import { Vec3, VolumeGeometry } from '../../src/types';
import { DICOM_DATA, SHARED_DATA, instancesIn } from '../study/synth';

/** A tiny NIfTI-1 (.nii.gz) reader: uint8 / int16 / float32, axis-aligned files only (enough here). */
function nifti(file: string): { dims: [number, number, number]; pix: [number, number, number]; data: Float32Array } {
  const b = zlib.gunzipSync(fs.readFileSync(file));
  if (b.readInt32LE(0) !== 348) throw new Error('not a little-endian NIfTI-1 file');
  const dims: [number, number, number] = [b.readInt16LE(42), b.readInt16LE(44), b.readInt16LE(46)];
  const pix: [number, number, number] = [b.readFloatLE(80), b.readFloatLE(84), b.readFloatLE(88)];
  const dt = b.readInt16LE(70);
  const off = Math.round(b.readFloatLE(108));
  const n = dims[0] * dims[1] * dims[2];
  const bytes = { 2: 1, 4: 2, 16: 4 }[dt as 2 | 4 | 16];
  if (!bytes) throw new Error(`NIfTI datatype ${dt} not read here`);
  const raw = new Uint8Array(b.subarray(off, off + n * bytes)).buffer; // aligned copy (little-endian host)
  const src = dt === 2 ? new Uint8Array(raw) : dt === 4 ? new Int16Array(raw) : new Float32Array(raw);
  return { dims, pix, data: Float32Array.from(src) };
}

/** Axial grid of a RAS NIfTI (i → patient left, j → posterior in LPS, k → superior), every `every`-th slice. */
function axial(dims: number[], pix: number[], every = 1): VolumeGeometry {
  const S = Math.ceil(dims[2] / every);
  return {
    rows: dims[1],
    columns: dims[0],
    slices: S,
    pixelSpacing: [pix[1], pix[0]],
    sliceSpacing: pix[2] * every,
    rowCosines: [-1, 0, 0],
    columnCosines: [0, -1, 0],
    normal: [0, 0, 1],
    slicePositions: Array.from({ length: S }, (_, k) => [0, 0, k * every * pix[2]] as Vec3),
    frameOfReferenceUid: '1.2.3',
    warnings: [],
  };
}
function slab(d: Float32Array, dims: number[], every: number): Float32Array {
  const p = dims[0] * dims[1];
  const S = Math.ceil(dims[2] / every);
  const o = new Float32Array(S * p);
  for (let k = 0; k < S; k++) o.set(d.subarray(k * every * p, (k * every + 1) * p), k * p);
  return o;
}
function dice(a: Uint8Array, b: Uint8Array): number {
  let i = 0;
  let s = 0;
  for (let k = 0; k < a.length; k++) {
    i += a[k] & b[k];
    s += a[k] + b[k];
  }
  return (2 * i) / s;
}

describe('synthetic head', () => {
  // 64x64x40 at 3 mm: brain sphere (r 60 mm, WM 100 with a dark ventricle), CSF/skull shell (r 60–68, value 5),
  // scalp shell (r 68–76, value 140, brighter than the brain), noise outside (value 3 ± 2)
  const S = 40;
  const R = 64;
  const C = 64;
  const g: VolumeGeometry = {
    rows: R,
    columns: C,
    slices: S,
    pixelSpacing: [3, 3],
    sliceSpacing: 3,
    rowCosines: [1, 0, 0],
    columnCosines: [0, 1, 0],
    normal: [0, 0, 1],
    slicePositions: Array.from({ length: S }, (_, k) => [0, 0, 3 * k] as Vec3),
    frameOfReferenceUid: '1.2.3',
    warnings: [],
  };
  const truth = new Uint8Array(S * R * C);
  const withSkull = new Float32Array(S * R * C);
  const stripped = new Float32Array(S * R * C);
  let seed = 1;
  const rnd = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
  for (let z = 0; z < S; z++)
    for (let r = 0; r < R; r++)
      for (let c = 0; c < C; c++) {
        const i = (z * R + r) * C + c;
        const d = Math.hypot((z - 20) * 3, (r - 32) * 3, (c - 32) * 3);
        const brain = d < 60 ? (d < 10 ? 20 : 100 + 5 * rnd()) : 0;
        truth[i] = d < 60 ? 1 : 0;
        withSkull[i] = d < 60 ? brain : d < 68 ? 5 + 2 * rnd() : d < 76 ? 140 + 5 * rnd() : 3 + 2 * rnd();
        stripped[i] = brain;
      }

  test('distance to the outside of a mask, in mm with anisotropic spacing', () => {
    const m = new Uint8Array(1 * 1 * 11).fill(1);
    m[0] = 0;
    const d = distanceToOutside(m, [1, 1, 11], [1, 1, 2]);
    expect(Array.from(d.slice(0, 4))).toEqual([0, 2, 4, 6]);
    expect(d[10]).toBe(20); // the edge of the volume is not outside
  });

  test('brain inside a dark skull and a bright scalp: the sphere, not the scalp', () => {
    const r = brainMaskMr([withSkull], g);
    expect(r.skullStripped).toBe(false);
    expect(dice(r.mask, truth)).toBeGreaterThan(0.9);
    const truthMl = (truth.reduce((a, b) => a + b, 0) * 27) / 1000;
    expect(Math.abs(r.volumeMl - truthMl) / truthMl).toBeLessThan(0.15);
  });

  test('already skull-stripped input (0 outside, no dark shell) is recognised; its mask is the non-zero region', () => {
    const r = brainMaskMr([stripped], g);
    expect(r.skullStripped).toBe(true);
    expect(r.notes.join('\n')).toMatch(/already skull-stripped/);
    expect(dice(r.mask, truth)).toBeGreaterThan(0.98);
  });
});

const CH2 = '/usr/share/mricron/templates/ch2.nii.gz';
const CH2BET = '/usr/share/mricron/templates/ch2bet.nii.gz';
const ch2Test = fs.existsSync(CH2) && fs.existsSync(CH2BET) ? test : test.skip;

describe('Colin27 (ch2, T1 with skull and face) against ch2bet', () => {
  ch2Test.each([5])(
    'every %i mm slices: Dice > 0.94 and volume within 10 % of ch2bet',
    (every) => {
      const t1 = nifti(CH2);
      const bet = nifti(CH2BET);
      const g = axial(t1.dims, t1.pix, every);
      const ref = Uint8Array.from(slab(bet.data, bet.dims, every), (x) => (x > 0 ? 1 : 0));
      const r = brainMaskMr([slab(t1.data, t1.dims, every)], g);
      const refMl = (ref.reduce((a, b) => a + b, 0) * g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
      const dc = dice(r.mask, ref);
      console.log(`Colin27 every ${every} mm: Dice ${dc.toFixed(3)}, mask ${r.volumeMl.toFixed(0)} mL, ch2bet ${refMl.toFixed(0)} mL`);
      expect(r.skullStripped).toBe(false);
      expect(dc).toBeGreaterThan(0.94);
      expect(Math.abs(r.volumeMl - refMl) / refMl).toBeLessThan(0.1);
    },
    120_000,
  );
});

const BRATS = path.join(SHARED_DATA, 'brats2018', 'Brats18_2013_11_1');
const bratsTest = fs.existsSync(BRATS) ? test : test.skip;

describe('BraTS (already skull-stripped)', () => {
  bratsTest(
    'four sequences: recognised as skull-stripped, Dice > 0.9 with the non-zero region',
    () => {
      const seqs = ['flair', 't1', 't1ce', 't2'].map((s) => nifti(path.join(BRATS, `Brats18_2013_11_1_${s}.nii.gz`)));
      const g = axial(seqs[0].dims, seqs[0].pix);
      const nz = new Uint8Array(seqs[0].data.length);
      for (let i = 0; i < nz.length; i++) nz[i] = seqs.some((s) => s.data[i] > 0) ? 1 : 0;
      const r = brainMaskMr(
        seqs.map((s) => s.data),
        g,
      );
      const dc = dice(r.mask, nz);
      console.log(`BraTS Brats18_2013_11_1: Dice with the non-zero region ${dc.toFixed(3)}`);
      expect(r.skullStripped).toBe(true);
      expect(dc).toBeGreaterThan(0.9);
    },
    120_000,
  );
});

const PHILIPS = path.join(DICOM_DATA, 'philips-achieva-brain');
const philipsTest = fs.existsSync(PHILIPS) ? test : test.skip;

describe('real Philips head (T2 512², FLAIR and T1 256², 5 mm slices, with skull)', () => {
  philipsTest(
    'volumes on the FLAIR grid: every mask between 0.9 and 1.8 L (adult brain 1.1–1.6 L, plus CSF and the orbits on T2)',
    async () => {
      const hs = readStudyHeaders(instancesIn(PHILIPS).filter((i) => /\/(401|701|901)_/.test(i.path)));
      const cg = commonGrid((await assembleFromHeaders(hs)).volumes);
      const vol = (ks: ('T2' | 'FLAIR' | 'T1')[]): number => brainMaskMr(ks.map((k) => cg.volumes[k]!), cg.geometry).volumeMl;
      const v = { T2: vol(['T2']), FLAIR: vol(['FLAIR']), T1: vol(['T1']), all: vol(['T2', 'FLAIR', 'T1']) };
      console.log(`Philips brain mask volumes (mL): ${JSON.stringify(Object.fromEntries(Object.entries(v).map(([k, x]) => [k, Math.round(x)])))}`);
      for (const x of [v.T2, v.FLAIR, v.T1, v.all]) {
        expect(x).toBeGreaterThan(900);
        expect(x).toBeLessThan(1800);
      }
      // the three together: within the adult range
      expect(v.all).toBeGreaterThan(1100);
      expect(v.all).toBeLessThan(1600);
    },
    180_000,
  );
});

const SIEMENS_T1 = path.join(DICOM_DATA, 'siemens-xa30-enhanced-dwi', '5_anat-T1w_acq-tfl');
const siemensTest = fs.existsSync(SIEMENS_T1) ? test : test.skip;

describe('real Siemens XA30 sagittal MPRAGE (128x128x96 @ 2 mm, face and neck in view)', () => {
  siemensTest(
    'the 5 mm erosion leaves a bridge to the face/neck (> 1.9 L), the retry with more erosion gives a brain-sized mask above the neck',
    async () => {
      const t1 = (await assembleFromHeaders(readStudyHeaders(instancesIn(SIEMENS_T1)))).volumes.T1!;
      const r = brainMaskMr([t1.data], t1.geometry);
      console.log(`Siemens T1 brain mask: ${r.volumeMl.toFixed(0)} mL; ${r.notes.filter((n) => /erosion/.test(n)).join(' | ')}`);
      expect(r.notes.join('\n')).toMatch(/more than 1900 mL: erosion/);
      expect(r.volumeMl).toBeGreaterThan(1000);
      expect(r.volumeMl).toBeLessThan(1600);
      // rows run from the vertex down (column cosines [0,0,-1], 2 mm): the lowest third of the field is neck
      const g = t1.geometry;
      let low = 0;
      let all = 0;
      for (let z = 0; z < g.slices; z++)
        for (let row = 0; row < g.rows; row++)
          for (let c = 0; c < g.columns; c++) {
            const m = r.mask[(z * g.rows + row) * g.columns + c];
            all += m;
            if (row > (2 * g.rows) / 3) low += m;
          }
      expect(low / all).toBeLessThan(0.05);
    },
    180_000,
  );
});
