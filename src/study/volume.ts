/**
 * Volume assembly: geometry checks on a stack of frames (sorted along the slice normal, never by
 * InstanceNumber or file order), then pixel loading with RescaleSlope/Intercept applied per frame.
 */
import * as fs from 'fs';
import { SliceSource, Vec3, Volume, VolumeGeometry, VolumeKind } from '../types';
import { num, readPart10 } from '../dicom/dcmjs';
import { decodeFrames, FrameArray, isSupportedTransferSyntax, locatePixelData } from './pixels';
import { FrameInfo, InstanceHeader } from './header';

export const dot = (a: Vec3, b: Vec3): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
export const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const sub = (a: Vec3, b: Vec3): Vec3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const norm = (a: Vec3): number => Math.hypot(a[0], a[1], a[2]);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export type GeometryResult =
  | { ok: true; geometry: VolumeGeometry; sorted: FrameInfo[] }
  | { ok: false; reason: string };

const ORIENTATION_TOLERANCE = 1e-3;

/**
 * Check and sort a stack of frames into a volume geometry. Rejects (with a reason) mixed matrix
 * sizes, mixed orientations, missing/zero/NaN spacing, missing positions and duplicate positions;
 * warns (geometry.warnings) about gantry tilt, uneven spacing and missing slices.
 */
export function stackGeometry(frames: FrameInfo[], frameOfReferenceUid: string, gantryTiltDeg?: number): GeometryResult {
  if (frames.length === 0) return { ok: false, reason: 'no frames' };
  const f0 = frames[0];
  for (const f of frames) {
    if (f.rows !== f0.rows || f.columns !== f0.columns) {
      return { ok: false, reason: `mixed matrix sizes (${f0.rows}x${f0.columns} and ${f.rows}x${f.columns})` };
    }
  }
  if (!f0.rows || !f0.columns) return { ok: false, reason: 'Rows/Columns missing' };
  for (const f of frames) {
    if (!f.position) return { ok: false, reason: 'ImagePositionPatient missing or invalid on some frames' };
    if (!f.orientation || f.orientation.length < 6 || !f.orientation.every((x) => Number.isFinite(x))) {
      return { ok: false, reason: 'ImageOrientationPatient missing or invalid on some frames' };
    }
  }
  const o0 = f0.orientation as number[];
  for (const f of frames) {
    const o = f.orientation as number[];
    if (o.some((x, i) => i < 6 && Math.abs(x - o0[i]) > ORIENTATION_TOLERANCE)) {
      return { ok: false, reason: `mixed orientations in one stack ([${o0.slice(0, 6).join(',')}] vs [${o.slice(0, 6).join(',')}])` };
    }
  }
  const ps = f0.pixelSpacing;
  if (!ps || !(ps[0] > 0) || !(ps[1] > 0) || !Number.isFinite(ps[0]) || !Number.isFinite(ps[1])) {
    return { ok: false, reason: `PixelSpacing missing, zero or not a number (${ps ? ps.join('\\') : 'absent'})` };
  }
  for (const f of frames) {
    const p = f.pixelSpacing;
    if (!p || Math.abs(p[0] - ps[0]) > 1e-3 || Math.abs(p[1] - ps[1]) > 1e-3) {
      return { ok: false, reason: 'mixed PixelSpacing in one stack' };
    }
  }
  let rowCosines: Vec3 = [o0[0], o0[1], o0[2]];
  let columnCosines: Vec3 = [o0[3], o0[4], o0[5]];
  const rn = norm(rowCosines);
  const cn = norm(columnCosines);
  if (!(rn > 0.5) || !(cn > 0.5)) return { ok: false, reason: 'degenerate ImageOrientationPatient' };
  rowCosines = rowCosines.map((x) => x / rn) as Vec3;
  columnCosines = columnCosines.map((x) => x / cn) as Vec3;
  const nrm = cross(rowCosines, columnCosines);
  const nn = norm(nrm);
  const normal = nrm.map((x) => x / nn) as Vec3;

  const sorted = [...frames].sort((a, b) => dot(a.position as Vec3, normal) - dot(b.position as Vec3, normal));
  const d = sorted.map((f) => dot(f.position as Vec3, normal));
  const gaps: number[] = [];
  for (let i = 1; i < d.length; i++) gaps.push(d[i] - d[i - 1]);
  if (gaps.some((g) => g < 0.01)) {
    return { ok: false, reason: 'several frames at the same slice position in one stack' };
  }
  const warnings: string[] = [];
  let sliceSpacing: number;
  if (gaps.length === 0) {
    sliceSpacing = f0.sliceThickness && f0.sliceThickness > 0 ? f0.sliceThickness : 1;
    warnings.push('single slice');
  } else {
    sliceSpacing = median(gaps);
    const tol = Math.max(0.05, 0.05 * sliceSpacing);
    const uneven = gaps.filter((g) => Math.abs(g - sliceSpacing) > tol);
    if (uneven.length > 0) {
      const missing = gaps
        .map((g, i) => ({ g, i }))
        .filter(({ g }) => g > 1.5 * sliceSpacing && Math.abs(g / sliceSpacing - Math.round(g / sliceSpacing)) < 0.2);
      const nMissing = missing.reduce((s, { g }) => s + Math.round(g / sliceSpacing) - 1, 0);
      if (nMissing > 0) {
        warnings.push(
          `${nMissing} missing slice(s): gap(s) of ${missing.map(({ g }) => g.toFixed(2)).join(', ')} mm where ${sliceSpacing.toFixed(2)} mm is the median spacing (after slice index ${missing.map(({ i }) => i).join(', ')})`,
        );
      }
      const mn = Math.min(...gaps);
      const mx = Math.max(...gaps);
      warnings.push(`uneven slice spacing: ${mn.toFixed(2)}–${mx.toFixed(2)} mm along the normal (median ${sliceSpacing.toFixed(2)} mm)`);
    }
    // Gantry tilt: slice positions move along a direction that is not the slice normal.
    const span = sub(sorted[sorted.length - 1].position as Vec3, sorted[0].position as Vec3);
    const sn = norm(span);
    if (sn > 0) {
      const cosang = Math.min(1, Math.abs(dot(span, normal)) / sn);
      const ang = (Math.acos(cosang) * 180) / Math.PI;
      if (ang > 0.5) {
        warnings.push(
          `gantry tilt / sheared stack: slices are offset at ${ang.toFixed(1)}° to the slice normal` +
            (gantryTiltDeg ? ` (GantryDetectorTilt ${gantryTiltDeg}°)` : '') +
            '; in-plane use is exact, through-plane geometry is sheared',
        );
      }
    }
  }
  if (gantryTiltDeg && Math.abs(gantryTiltDeg) > 0 && !warnings.some((w) => w.startsWith('gantry tilt'))) {
    warnings.push(`GantryDetectorTilt ${gantryTiltDeg}° reported by the scanner`);
  }
  const geometry: VolumeGeometry = {
    rows: f0.rows,
    columns: f0.columns,
    slices: sorted.length,
    pixelSpacing: [ps[0], ps[1]],
    sliceSpacing,
    rowCosines,
    columnCosines,
    normal,
    slicePositions: sorted.map((f) => f.position as Vec3),
    frameOfReferenceUid,
    warnings,
  };
  return { ok: true, geometry, sorted };
}

/** Decoded frames cached per instance for one assembly run (one file read and decode each). */
export class PixelCache {
  private cache = new Map<string, Promise<FrameArray[]>>();
  constructor(private headers: Map<string, InstanceHeader>) {}

  frames(sopInstanceUid: string): Promise<FrameArray[]> {
    let p = this.cache.get(sopInstanceUid);
    if (!p) {
      p = this.load(sopInstanceUid);
      this.cache.set(sopInstanceUid, p);
    }
    return p;
  }

  private async load(uid: string): Promise<FrameArray[]> {
    const h = this.headers.get(uid);
    if (!h) throw new Error(`no header for instance ${uid.slice(-12)}`);
    if (!isSupportedTransferSyntax(h.transferSyntaxUid)) {
      throw new Error(`transfer syntax ${h.transferSyntaxUid} is not supported`);
    }
    const buf = fs.readFileSync(h.instance.path);
    const nFrames = Math.max(1, num(h.ds, 'NumberOfFrames') ?? 1);
    const fast = locatePixelData(buf, h.transferSyntaxUid, nFrames);
    if (fast) return decodeFrames({ ...h.ds, PixelData: fast }, h.transferSyntaxUid);
    const p = readPart10(buf);
    return decodeFrames(p.dataset, p.transferSyntaxUid);
  }
}

/** Load the pixels of a sorted stack into a Volume (values after rescale). */
export async function loadVolume(
  kind: VolumeKind,
  geometry: VolumeGeometry,
  sorted: FrameInfo[],
  cache: PixelCache,
  extra: { bValue?: number; seriesDescription?: string },
): Promise<Volume> {
  const n = geometry.rows * geometry.columns;
  const data = new Float32Array(n * sorted.length);
  const sliceSources: SliceSource[] = [];
  for (let z = 0; z < sorted.length; z++) {
    const f = sorted[z];
    const frames = await cache.frames(f.sopInstanceUid);
    const src = frames[f.frameIndex];
    if (!src || src.length < n) throw new Error(`frame ${f.frameIndex + 1} of instance …${f.sopInstanceUid.slice(-12)} missing`);
    const slope = Number.isFinite(f.rescaleSlope) && f.rescaleSlope !== 0 ? f.rescaleSlope : 1;
    const icpt = Number.isFinite(f.rescaleIntercept) ? f.rescaleIntercept : 0;
    const off = z * n;
    if (f.mosaic) {
      const { index, tilesPerRow, mosaicColumns } = f.mosaic;
      const r0 = Math.floor(index / tilesPerRow) * geometry.rows;
      const c0 = (index % tilesPerRow) * geometry.columns;
      for (let r = 0; r < geometry.rows; r++) {
        const s0 = (r0 + r) * mosaicColumns + c0;
        for (let c = 0; c < geometry.columns; c++) data[off + r * geometry.columns + c] = src[s0 + c] * slope + icpt;
      }
    } else {
      for (let i = 0; i < n; i++) data[off + i] = src[i] * slope + icpt;
    }
    sliceSources.push({
      sopInstanceUid: f.sopInstanceUid,
      sopClassUid: f.sopClassUid,
      seriesInstanceUid: f.seriesInstanceUid,
      frameNumber: f.frameNumber,
    });
  }
  return {
    kind,
    geometry,
    data,
    sliceSources,
    bValue: extra.bValue,
    seriesInstanceUid: sorted[0].seriesInstanceUid,
    seriesDescription: extra.seriesDescription,
  };
}
