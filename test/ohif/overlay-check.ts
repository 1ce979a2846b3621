/**
 * Checks that a segmentation shown in OHIF lies where the lesion is, two independent ways:
 *  - `checkLabelmapPlacement`: the viewer's own segmentation state (labelmap slice by slice, each
 *    tied to the source instance it is drawn over) against the known lesion (slices, centre, size);
 *  - `checkRenderedOverlay`: the pixels Chromium rendered (screenshot) inside the viewport canvas,
 *    against where cornerstone projects the known lesion (world coordinates from the source geometry,
 *    not from the SEG) on that canvas.
 * Both return a list of problems in words (empty = placed right), so a test can assert either way.
 */
import type { LabelmapSlice, LoadedSegmentation, ViewportPlacement } from '../harness/ohif';
import type { RgbaImage } from './png';

export interface ExpectedLesion {
  /** SOPInstanceUID of source slice z (ascending along the normal). */
  sliceSops: string[];
  /** Slices that hold the lesion. */
  lesionSlices: number[];
  /** Lesion disk on each lesion slice (pixel indices). */
  centre: { row: number; column: number };
  radius: number;
}

/** Viewer state: every source slice has a labelmap slice; lesion pixels on exactly the lesion slices, centred on the lesion. */
export function checkLabelmapPlacement(seg: LoadedSegmentation, exp: ExpectedLesion, tolerancePx = 1.5): string[] {
  const problems: string[] = [];
  const bySop = new Map<string, LabelmapSlice>();
  for (const s of seg.slices) bySop.set(s.referencedSopInstanceUid, s);
  const area = Math.PI * exp.radius ** 2;
  exp.sliceSops.forEach((sop, z) => {
    const s = bySop.get(sop);
    if (!s) {
      problems.push(`slice ${z}: no labelmap slice over this source instance`);
      return;
    }
    const lesion = exp.lesionSlices.includes(z);
    if (!lesion && s.count > 0) {
      problems.push(`slice ${z}: ${s.count} segment pixels on a slice without lesion (centroid r${s.centroidRow.toFixed(1)} c${s.centroidColumn.toFixed(1)})`);
    }
    if (lesion) {
      if (s.count === 0) problems.push(`slice ${z}: lesion slice has no segment pixels`);
      else {
        const d = Math.hypot(s.centroidRow - exp.centre.row, s.centroidColumn - exp.centre.column);
        if (d > tolerancePx) {
          problems.push(
            `slice ${z}: segment centroid r${s.centroidRow.toFixed(1)} c${s.centroidColumn.toFixed(1)} is ${d.toFixed(1)} px from the lesion centre r${exp.centre.row} c${exp.centre.column}`,
          );
        }
        if (Math.abs(s.count - area) > 0.25 * area) problems.push(`slice ${z}: ${s.count} segment pixels, lesion has ~${Math.round(area)}`);
      }
    }
  });
  const known = new Set(exp.sliceSops);
  const foreign = seg.slices.filter((s) => !known.has(s.referencedSopInstanceUid));
  if (foreign.length) problems.push(`${foreign.length} labelmap slices over instances that are not the source series`);
  return problems;
}

/** A pixel "has the overlay colour": the segment colour is a strong red, the image underneath is grey. */
export function isOverlayColoured(r: number, g: number, b: number, minExcess = 50): boolean {
  return r - Math.max(g, b) >= minExcess;
}

export interface RenderedOverlayResult {
  problems: string[];
  /** Overlay-coloured pixels inside / outside the expected lesion disk (within the canvas). */
  inside: number;
  outside: number;
  /** Expected lesion disk on the page (CSS px). */
  centre: [number, number];
  radiusPx: number;
  /** Centroid of all overlay-coloured pixels (page px), undefined when none. */
  centroid?: [number, number];
}

/**
 * Rendered pixels: on a lesion slice the overlay colour must fill most of the projected lesion disk
 * and hardly appear outside it (plus a margin for the outline); on a slice without lesion it must not
 * appear anywhere on the canvas.
 * `placement.points` = [lesion centre, a point on the lesion's edge] in page coordinates.
 */
export function checkRenderedOverlay(
  shot: RgbaImage,
  placement: ViewportPlacement,
  expectLesion: boolean,
  what: string,
  marginPx = 4,
): RenderedOverlayResult {
  const [centre, edge] = placement.points;
  const radiusPx = Math.hypot(edge[0] - centre[0], edge[1] - centre[1]);
  const c = placement.canvas;
  const x0 = Math.max(0, Math.ceil(c.x));
  const y0 = Math.max(0, Math.ceil(c.y));
  const x1 = Math.min(shot.width, Math.floor(c.x + c.width));
  const y1 = Math.min(shot.height, Math.floor(c.y + c.height));
  let inside = 0;
  let outside = 0;
  let sx = 0;
  let sy = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const o = (y * shot.width + x) * 4;
      if (!isOverlayColoured(shot.data[o], shot.data[o + 1], shot.data[o + 2])) continue;
      sx += x;
      sy += y;
      if (Math.hypot(x + 0.5 - centre[0], y + 0.5 - centre[1]) <= radiusPx + marginPx) inside++;
      else outside++;
    }
  }
  const total = inside + outside;
  const problems: string[] = [];
  const diskArea = Math.PI * radiusPx ** 2;
  const centroid: [number, number] | undefined = total ? [sx / total, sy / total] : undefined;
  if (expectLesion) {
    if (inside < 0.6 * diskArea) {
      problems.push(`${what}: only ${inside} overlay pixels inside the lesion (disk of ~${Math.round(diskArea)} px on screen)`);
    }
    if (outside > 0.05 * Math.max(inside, diskArea)) problems.push(`${what}: ${outside} overlay pixels outside the lesion`);
    if (centroid && Math.hypot(centroid[0] - centre[0], centroid[1] - centre[1]) > 0.2 * radiusPx) {
      problems.push(
        `${what}: overlay centred at (${centroid[0].toFixed(0)}, ${centroid[1].toFixed(0)}), lesion at (${centre[0].toFixed(0)}, ${centre[1].toFixed(0)})`,
      );
    }
  } else if (total > 0) {
    problems.push(`${what}: ${total} overlay pixels on a slice without lesion`);
  }
  return { problems, inside, outside, centre, radiusPx, centroid };
}
