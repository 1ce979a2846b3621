/**
 * Test helpers for the brain tumour task: a tumour SEG's frames back to a label volume on a written
 * BraTS series (each frame placed by the SOPInstanceUID it references, never by frame order), Dice,
 * and a models folder holding only the brain tumour models (quick registry loads).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { num, seq, type NaturalDataset } from '../../src/dicom/dcmjs';
import { unpackBits } from '../../src/results/seg';
import type { BratsSeries } from './brats-study';

/** The committed models (TUMOUR_MODELS_DIR overrides, e.g. to try a model before it is committed). */
export const MODELS_DIR = process.env.TUMOUR_MODELS_DIR ?? path.resolve(__dirname, '../../models');

export function modelReady(name: string): boolean {
  return fs.existsSync(path.join(MODELS_DIR, `${name}.json`)) && fs.existsSync(path.join(MODELS_DIR, `${name}.onnx`));
}

/** A temp folder with symlinks to the named models' manifests and ONNX files. */
export function modelsSubset(names: string[]): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tumour-models-'));
  for (const n of names) {
    if (!modelReady(n)) continue;
    for (const ext of ['json', 'onnx']) fs.symlinkSync(path.join(MODELS_DIR, `${n}.${ext}`), path.join(d, `${n}.${ext}`));
  }
  return d;
}

/** SEG → labels 0..3 (segment number) on the series' grid, frames placed by their ReferencedSOPInstanceUID. */
export function segToLabels(seg: NaturalDataset, series: Pick<BratsSeries, 'volume' | 'files'>): Uint8Array {
  const g = series.volume.geometry;
  const sliceOf = new Map(series.files.map((f) => [f.sopInstanceUid, f.sliceIndex]));
  const rows = num(seg, 'Rows')!;
  const cols = num(seg, 'Columns')!;
  if (rows !== g.rows || cols !== g.columns) throw new Error(`SEG ${rows}x${cols}, series ${g.rows}x${g.columns}`);
  const frames = num(seg, 'NumberOfFrames')!;
  const bits = unpackBits(new Uint8Array((seg.PixelData as ArrayBuffer[])[0]), frames, rows * cols);
  const out = new Uint8Array(g.slices * rows * cols);
  seq(seg, 'PerFrameFunctionalGroupsSequence').forEach((fg, i) => {
    const src = seq(seq(fg, 'DerivationImageSequence')[0], 'SourceImageSequence')[0];
    const z = sliceOf.get(String(src.ReferencedSOPInstanceUID));
    if (z === undefined) throw new Error('SEG frame references an instance outside the series');
    const segNo = Number(seq(fg, 'SegmentIdentificationSequence')[0].ReferencedSegmentNumber);
    const off = z * rows * cols;
    bits[i].forEach((b, p) => {
      if (b) out[off + p] = segNo;
    });
  });
  return out;
}

/** Dice of the voxels where pred and truth are in `labels`. */
export function diceOf(pred: Uint8Array, truth: Uint8Array, labels: number[]): number {
  let a = 0;
  let b = 0;
  let ab = 0;
  for (let i = 0; i < pred.length; i++) {
    const p = labels.includes(pred[i]);
    const t = labels.includes(truth[i]);
    if (p) a++;
    if (t) b++;
    if (p && t) ab++;
  }
  return a + b === 0 ? 1 : (2 * ab) / (a + b);
}

export const WT = [1, 2, 3];
export const TC = [1, 3];
export const ET = [3];
