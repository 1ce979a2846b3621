/**
 * Checks that a segmentation shown in OHIF lies where the lesion is, two independent ways:
 *  - `checkLabelmapPlacement`: the viewer's own segmentation state (labelmap slice by slice, each
 *    tied to the source instance it is drawn over) against the known lesion mask, voxel for voxel;
 *  - `checkRenderedOverlay`: the pixels Chromium rendered (screenshot) inside the viewport canvas,
 *    against where cornerstone projects the known lesion's pixels on that canvas (world coordinates
 *    from the source geometry, not from the SEG).
 * Both return a list of problems in words (empty = placed right), so a test can assert either way.
 */
import type { Page } from 'playwright-core';
import type { LabelmapSlice, LoadedSegmentation, ViewportPlacement } from '../harness/ohif';
import type { RgbaImage } from './png';

export interface ExpectedLesion {
  /** Source slice z (ascending along the normal): instance and frame (1 for single-frame instances). */
  slices: Array<{ sopInstanceUid: string; frameNumber: number }>;
  rows: number;
  columns: number;
  /** Known lesion on the source grid (slice-major, row-major), non-zero = lesion. */
  mask: Uint8Array;
}

interface SliceStats {
  count: number;
  row: number;
  column: number;
}

function maskSliceStats(exp: ExpectedLesion, z: number): SliceStats {
  const ppf = exp.rows * exp.columns;
  let count = 0;
  let sr = 0;
  let sc = 0;
  for (let i = 0; i < ppf; i++) {
    if (exp.mask[z * ppf + i]) {
      count++;
      sr += Math.floor(i / exp.columns);
      sc += i % exp.columns;
    }
  }
  return { count, row: count ? sr / count : NaN, column: count ? sc / count : NaN };
}

/** Slices of the known mask that hold lesion. */
export function lesionSlicesOf(exp: ExpectedLesion): number[] {
  return exp.slices.map((_, z) => z).filter((z) => maskSliceStats(exp, z).count > 0);
}

const at = (row: number, column: number): string => `r${row.toFixed(1)} c${column.toFixed(1)}`;

/**
 * Viewer state: every source slice has a labelmap slice, and the labelmap over source instance z holds
 * exactly the lesion pixels of slice z (reported per slice with counts and centroids when not).
 */
export function checkLabelmapPlacement(seg: LoadedSegmentation, exp: ExpectedLesion): string[] {
  const problems: string[] = [];
  const key = (uid: string, frame: number): string => `${uid}#${frame}`;
  const bySource = new Map<string, LabelmapSlice>();
  for (const s of seg.slices) bySource.set(key(s.referencedSopInstanceUid, s.referencedFrameNumber), s);
  const ppf = exp.rows * exp.columns;
  exp.slices.forEach((src, z) => {
    const s = bySource.get(key(src.sopInstanceUid, src.frameNumber));
    if (!s) {
      problems.push(`slice ${z}: no labelmap slice over this source instance/frame`);
      return;
    }
    if (s.rows !== exp.rows || s.columns !== exp.columns) {
      problems.push(`slice ${z}: labelmap is ${s.rows}x${s.columns}, the image ${exp.rows}x${exp.columns}`);
      return;
    }
    const want = maskSliceStats(exp, z);
    if (want.count === 0) {
      if (s.count > 0) problems.push(`slice ${z}: ${s.count} segment pixels on a slice without lesion (centroid ${at(s.centroidRow, s.centroidColumn)})`);
      return;
    }
    if (s.count === 0) {
      problems.push(`slice ${z}: lesion slice (${want.count} px at ${at(want.row, want.column)}) has no segment pixels`);
      return;
    }
    const got = new Set(s.indices);
    let missing = 0;
    for (let i = 0; i < ppf; i++) if (exp.mask[z * ppf + i] && !got.has(i)) missing++;
    const extra = s.count - (want.count - missing);
    if (missing || extra) {
      problems.push(
        `slice ${z}: segment ${s.count} px at ${at(s.centroidRow, s.centroidColumn)}, lesion ${want.count} px at ${at(want.row, want.column)} (${missing} lesion px uncovered, ${extra} outside)`,
      );
    }
  });
  const known = new Set(exp.slices.map((x) => key(x.sopInstanceUid, x.frameNumber)));
  const foreign = seg.slices.filter((s) => !known.has(key(s.referencedSopInstanceUid, s.referencedFrameNumber)));
  if (foreign.length) problems.push(`${foreign.length} labelmap slices over images that are not the source slices`);
  return problems;
}

/** A pixel "has the overlay colour": the segment colour is a strong red, the image underneath is grey. */
export function isOverlayColoured(r: number, g: number, b: number, minExcess = 50): boolean {
  return r - Math.max(g, b) >= minExcess;
}

export interface RenderedOverlayResult {
  problems: string[];
  /** Lesion pixels of this slice, and how many of them show the overlay colour on screen. */
  lesionPixels: number;
  lesionPixelsCovered: number;
  /** Overlay-coloured screen pixels on the canvas, and how many fall outside the (1-px dilated) lesion. */
  overlayScreenPixels: number;
  overlayOutside: number;
}

/**
 * Rendered pixels of slice z. `placement.points` must be the page positions of the centres of image
 * pixels (0,0), (0,1) and (1,0) of that slice (row, column), from which the pixel→page mapping is
 * taken. On a lesion slice the overlay colour must show at (nearly) every lesion pixel and (nearly)
 * nowhere else; on a slice without lesion it must not show at all.
 */
export function checkRenderedOverlay(shot: RgbaImage, placement: ViewportPlacement, exp: ExpectedLesion, z: number, what: string): RenderedOverlayResult {
  const [p00, p01, p10] = placement.points;
  // page = p00 + column * u + row * v
  const u = [p01[0] - p00[0], p01[1] - p00[1]];
  const v = [p10[0] - p00[0], p10[1] - p00[1]];
  const det = u[0] * v[1] - u[1] * v[0];
  if (Math.abs(det) < 1e-6) throw new Error('degenerate pixel→page mapping');
  const toPixel = (x: number, y: number): [number, number] => {
    const dx = x - p00[0];
    const dy = y - p00[1];
    const column = (dx * v[1] - dy * v[0]) / det;
    const row = (u[0] * dy - u[1] * dx) / det;
    return [row, column];
  };
  const ppf = exp.rows * exp.columns;
  const lesionAt = (r: number, c: number): boolean =>
    r >= 0 && c >= 0 && r < exp.rows && c < exp.columns && exp.mask[z * ppf + r * exp.columns + c] !== 0;
  const colouredAt = (x: number, y: number): boolean => {
    const xi = Math.floor(x);
    const yi = Math.floor(y);
    if (xi < 0 || yi < 0 || xi >= shot.width || yi >= shot.height) return false;
    const o = (yi * shot.width + xi) * 4;
    return isOverlayColoured(shot.data[o], shot.data[o + 1], shot.data[o + 2]);
  };

  // Every overlay-coloured pixel of the canvas: is it over the lesion (allowing the outline, 1 px around)?
  const c = placement.canvas;
  let overlayScreenPixels = 0;
  let overlayOutside = 0;
  for (let y = Math.max(0, Math.ceil(c.y)); y < Math.min(shot.height, Math.floor(c.y + c.height)); y++) {
    for (let x = Math.max(0, Math.ceil(c.x)); x < Math.min(shot.width, Math.floor(c.x + c.width)); x++) {
      if (!colouredAt(x + 0.5, y + 0.5)) continue;
      overlayScreenPixels++;
      const [r, col] = toPixel(x + 0.5, y + 0.5);
      const ri = Math.round(r);
      const ci = Math.round(col);
      let near = false;
      for (let dr = -1; dr <= 1 && !near; dr++) for (let dc = -1; dc <= 1 && !near; dc++) near = lesionAt(ri + dr, ci + dc);
      if (!near) overlayOutside++;
    }
  }
  // Every lesion pixel: does the screen show the overlay colour at its centre?
  let lesionPixels = 0;
  let lesionPixelsCovered = 0;
  for (let r = 0; r < exp.rows; r++) {
    for (let col = 0; col < exp.columns; col++) {
      if (!lesionAt(r, col)) continue;
      lesionPixels++;
      const x = p00[0] + col * u[0] + r * v[0];
      const y = p00[1] + col * u[1] + r * v[1];
      if (colouredAt(x, y)) lesionPixelsCovered++;
    }
  }
  const problems: string[] = [];
  if (lesionPixels > 0) {
    if (lesionPixelsCovered < 0.9 * lesionPixels) {
      problems.push(`${what}: overlay shows at only ${lesionPixelsCovered} of ${lesionPixels} lesion pixels`);
    }
    if (overlayOutside > 0.05 * overlayScreenPixels) {
      problems.push(`${what}: ${overlayOutside} of ${overlayScreenPixels} overlay screen pixels lie outside the lesion`);
    }
  } else if (overlayScreenPixels > 0) {
    problems.push(`${what}: ${overlayScreenPixels} overlay screen pixels on a slice without lesion`);
  }
  return { problems, lesionPixels, lesionPixelsCovered, overlayScreenPixels, overlayOutside };
}

/** Per labelmap slice: the source instance and, per segment value, the sorted pixel indices. */
export interface ValueSlice {
  uid: string;
  byValue: Record<number, number[]>;
}

/** The loaded (first) segmentation's labelmap with its values, slice by slice (the harness reads only non-zero positions). */
export async function labelmapValues(page: Page): Promise<ValueSlice[]> {
  return page.evaluate(() => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const w = globalThis as any;
    const s = w.services.segmentationService.getSegmentations()[0];
    const lm = s.representationData.Labelmap;
    return (lm.imageIds as string[]).map((id: string, i: number) => {
      const img = w.cornerstone.cache.getImage(id);
      const ref: string = img?.referencedImageId ?? lm.referencedImageIds?.[i] ?? '';
      const m = /\/instances\/([0-9.]+)\//.exec(ref) ?? /[?&]objectUID=([0-9.]+)/.exec(ref);
      const px = img.voxelManager?.getScalarData?.() ?? img.getPixelData();
      const byValue: Record<number, number[]> = {};
      for (let k = 0; k < px.length; k++) if (px[k]) (byValue[px[k]] ??= []).push(k);
      return { uid: m ? m[1] : '', byValue };
    });
  });
}

/**
 * The viewer's labelmap against a known label map on the source grid (value = segment number), segment by segment
 * and pixel for pixel on each source slice; `slicesWith` counts the source slices with any labelled voxel.
 */
export function compareLabelmapValues(
  values: ValueSlice[],
  slices: ExpectedLesion['slices'],
  labels: Uint8Array,
  pixelsPerSlice: number,
  segmentNumbers: number[],
): { problems: string[]; slicesWith: number } {
  const byUid = new Map(values.map((v) => [v.uid, v.byValue]));
  const problems: string[] = [];
  let slicesWith = 0;
  slices.forEach((src, z) => {
    const got = byUid.get(src.sopInstanceUid);
    if (!got) return void problems.push(`slice ${z}: no labelmap over ${src.sopInstanceUid}`);
    let any = false;
    for (const v of segmentNumbers) {
      const want: number[] = [];
      for (let i = 0; i < pixelsPerSlice; i++) if (labels[z * pixelsPerSlice + i] === v) want.push(i);
      const have = got[v] ?? [];
      if (want.length) any = true;
      if (want.length !== have.length || want.some((x, k) => have[k] !== x)) problems.push(`slice ${z} segment ${v}: viewer ${have.length} px, expected ${want.length} px`);
    }
    if (any) slicesWith++;
  });
  return { problems, slicesWith };
}
