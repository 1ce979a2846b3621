/**
 * Resampling between the acquisition grid and the model grid (models/README.md): each acquired
 * slice is resampled in-plane, bilinear, to size[0] x size[1] pixels at spacingMm, centred on the
 * centre of the acquired slice, rows and columns in acquired order; no through-plane resampling.
 */
import { SliceSource, Volume, VolumeGeometry } from '../types';

export interface ModelGrid {
  /** [rows, columns] of the model input. */
  size: [number, number];
  spacingMm: number;
}

export interface ModelGridVolume {
  grid: ModelGrid;
  /** slices * size[0] * size[1], slice-major then row-major. */
  data: Float32Array;
  /** sliceSources[z] of the source volume: the model slice z comes from that instance/frame. */
  sliceSources: SliceSource[];
}

/** Bilinear sample of one slice at fractional (row, col); outside the slice → 0. */
function bilinear(src: Float32Array, off: number, rows: number, cols: number, r: number, c: number): number {
  if (r < -0.5 || c < -0.5 || r > rows - 0.5 || c > cols - 0.5) return 0;
  const rr = Math.min(Math.max(r, 0), rows - 1);
  const cc = Math.min(Math.max(c, 0), cols - 1);
  const r0 = Math.floor(rr);
  const c0 = Math.floor(cc);
  const r1 = Math.min(r0 + 1, rows - 1);
  const c1 = Math.min(c0 + 1, cols - 1);
  const fr = rr - r0;
  const fc = cc - c0;
  const a = src[off + r0 * cols + c0];
  const b = src[off + r0 * cols + c1];
  const c_ = src[off + r1 * cols + c0];
  const d = src[off + r1 * cols + c1];
  return (1 - fr) * ((1 - fc) * a + fc * b) + fr * ((1 - fc) * c_ + fc * d);
}

/** Resample every slice of a volume onto the model grid. */
export function toModelGrid(volume: Volume, grid: ModelGrid): ModelGridVolume {
  const g = volume.geometry;
  const [H, W] = grid.size;
  const out = new Float32Array(g.slices * H * W);
  const srcR0 = (g.rows - 1) / 2;
  const srcC0 = (g.columns - 1) / 2;
  const dstR0 = (H - 1) / 2;
  const dstC0 = (W - 1) / 2;
  // PixelSpacing[0] = distance between rows, [1] = between columns.
  const rScale = grid.spacingMm / g.pixelSpacing[0];
  const cScale = grid.spacingMm / g.pixelSpacing[1];
  const n = g.rows * g.columns;
  for (let z = 0; z < g.slices; z++) {
    for (let r = 0; r < H; r++) {
      const sr = srcR0 + (r - dstR0) * rScale;
      for (let c = 0; c < W; c++) {
        const sc = srcC0 + (c - dstC0) * cScale;
        out[(z * H + r) * W + c] = bilinear(volume.data, z * n, g.rows, g.columns, sr, sc);
      }
    }
  }
  return { grid, data: out, sliceSources: volume.sliceSources };
}

/**
 * Map model-grid slices (e.g. lesion probabilities, slices * H * W or one array a slice) back onto
 * the acquisition grid of `geometry`. Source pixels outside the model's field of view get 0.
 */
export function fromModelGrid(
  probSlices: Float32Array | Float32Array[],
  geometry: VolumeGeometry,
  grid: ModelGrid,
): Float32Array {
  const [H, W] = grid.size;
  const flat: Float32Array = Array.isArray(probSlices)
    ? (() => {
        const f = new Float32Array(probSlices.length * H * W);
        probSlices.forEach((s, i) => f.set(s.subarray(0, H * W), i * H * W));
        return f;
      })()
    : probSlices;
  if (flat.length !== geometry.slices * H * W) {
    throw new Error(`model output holds ${flat.length / (H * W)} slices, the volume ${geometry.slices}`);
  }
  const out = new Float32Array(geometry.slices * geometry.rows * geometry.columns);
  const srcR0 = (geometry.rows - 1) / 2;
  const srcC0 = (geometry.columns - 1) / 2;
  const dstR0 = (H - 1) / 2;
  const dstC0 = (W - 1) / 2;
  const rScale = geometry.pixelSpacing[0] / grid.spacingMm;
  const cScale = geometry.pixelSpacing[1] / grid.spacingMm;
  for (let z = 0; z < geometry.slices; z++) {
    for (let r = 0; r < geometry.rows; r++) {
      const mr = dstR0 + (r - srcR0) * rScale;
      for (let c = 0; c < geometry.columns; c++) {
        const mc = dstC0 + (c - srcC0) * cScale;
        out[(z * geometry.rows + r) * geometry.columns + c] = bilinear(flat, z * H * W, H, W, mr, mc);
      }
    }
  }
  return out;
}

/** Key of a slice source: SOPInstanceUID, plus "#frame" for multi-frame instances. */
export function sliceSourceKey(s: SliceSource): string {
  return s.frameNumber !== undefined ? `${s.sopInstanceUid}#${s.frameNumber}` : s.sopInstanceUid;
}

/** Split a source-grid array into one slice a source instance/frame (keyed by sliceSourceKey). */
export function slicesBySource(data: Float32Array, geometry: VolumeGeometry, sliceSources: SliceSource[]): Map<string, Float32Array> {
  const n = geometry.rows * geometry.columns;
  const m = new Map<string, Float32Array>();
  sliceSources.forEach((s, z) => m.set(sliceSourceKey(s), data.slice(z * n, (z + 1) * n)));
  return m;
}
