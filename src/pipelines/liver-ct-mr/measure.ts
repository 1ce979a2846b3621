/**
 * Post-processing and measurements of the liver model's label map (issue 16 contract; models/training/liver/
 * liver_post.py does the same in python, and test/fixtures/liver/expected.json holds its answers):
 *
 * postprocessLiver: (1) liver region = class >= 1; only its largest 26-connected 3-D component is kept (ties: the
 *   component met first in (slice, row, column) raster order), the rest becomes background; (2) tumour = class 2
 *   inside it; 26-connected tumour components with a volume < minTumourMl become liver; (3) shape rules on the
 *   remaining tumour components (manifest `postprocess.tumourShape`; 0 = off), each turning the component into liver:
 *   - flat end (flatEndFactor c): a tumour is a rounded body, so where the component ends inside the series (the slice
 *     beyond its first or last slice belongs to the series and holds none of it), its in-plane diameter d on that end
 *     slice must be small: a sphere of diameter D cut within one slice spacing s of its pole has d <= 2 sqrt(s D).
 *     Dropped when d > c sqrt(s D) at such an end (D = its longest axial diameter). A component on the series' first
 *     or last slice is not judged on that side: it may go on beyond the coverage. Catches what a 2-D model makes of
 *     an in-plane structure on one or two slices of a thin-slice series (a tumour of 2 cm on 1 of 3 1-mm slices).
 *   - tubular (minAxialFill f): on the component's largest-area slice (ties: the first), area / (pi d^2 / 4) with d
 *     that slice's diameter; a vessel running in-plane fills little of that circle. Dropped when the fill < f.
 *   Diameters are measured as measureLiver does.
 * measureLiver: liver mL (liver + tumour voxels); per tumour (26-connected component of class 2): mL, longest axial
 *   diameter = the largest in-plane distance between two voxel centres of the component on any one slice, plus one
 *   pixel spacing (a caliper laid on the image touches the voxels' outer edges, not their centres; the row spacing,
 *   as the python reference: square pixels in practice), centroid (voxel indices and patient LPS mm). Tumours are
 *   listed by volume, largest first (equal sizes: raster order). No Couinaud segment: it is defined by the hepatic
 *   and portal veins, which the model does not segment, so none is derived.
 */
import type { VolumeGeometry } from '../../types';
import { components26 as label26 } from '../lesion-postprocess';

/** 26-connected components (lesion-postprocess.ts, numbered 1.. in raster order of their first voxel), their sizes and voxel indices (index 0 unused). */
function components26(mask: Uint8Array, slices: number, rows: number, columns: number): { labels: Int32Array; sizes: number[]; members: number[][] } {
  const { labels, members } = label26(mask, slices, rows, columns);
  return { labels, sizes: [0, ...members.map((m) => m.length)], members: [[], ...members] };
}

export interface LiverGrid {
  slices: number;
  rows: number;
  columns: number;
  /** [row spacing, column spacing] mm (DICOM PixelSpacing order). */
  pixelSpacing: [number, number];
  /** Centre-to-centre distance of adjacent slices, mm. */
  sliceSpacing: number;
}

export const voxelMlOf = (g: Pick<LiverGrid, 'pixelSpacing' | 'sliceSpacing'>): number => (g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;

export interface LiverPostprocessResult {
  labels: Uint8Array;
  /** What was removed, in words (outcome, SR). */
  summary: string;
  removedLiverMl: number;
  smallTumoursToLiver: number;
  /** Tumour components the shape rules turned into liver, by rule. */
  shapeToLiver: { flatEnd: number; tubular: number };
}

/** The post-processing's parameters (manifest `postprocess`; 0 = a rule off). */
export interface LiverPostprocessOptions {
  minTumourMl: number;
  flatEndFactor?: number;
  minAxialFill?: number;
}

/** Per slice, the in-plane pixel indices of a component given by its voxel indices. */
function slicesOf(voxels: number[], plane: number): Map<number, number[]> {
  const by = new Map<number, number[]>();
  for (const i of voxels) {
    const z = (i / plane) | 0;
    let l = by.get(z);
    if (!l) by.set(z, (l = []));
    l.push(i - z * plane);
  }
  return by;
}

/** Which shape rule (file comment) turns this tumour component into liver, or null. */
function shapeRule(bySlice: Map<number, number[]>, labels: Int32Array, k: number, g: LiverGrid, o: LiverPostprocessOptions): 'flat end' | 'tubular' | null {
  const { rows, columns, slices } = g;
  const [rowMm, colMm] = g.pixelSpacing;
  const plane = rows * columns;
  const zs = [...bySlice.keys()].sort((a, b) => a - b);
  const diam = new Map<number, number>();
  for (const z of zs) diam.set(z, sliceDiameter(bySlice.get(z)!, rows, columns, rowMm, colMm, (p) => labels[z * plane + p] === k) + rowMm);
  const big = Math.max(...diam.values());
  const c = o.flatEndFactor ?? 0;
  if (c > 0) {
    const lo = zs[0];
    const hi = zs[zs.length - 1];
    for (const [z, inside] of [[lo, lo > 0], [hi, hi < slices - 1]] as [number, boolean][]) {
      if (inside && diam.get(z)! > c * Math.sqrt(g.sliceSpacing * big)) return 'flat end';
    }
  }
  const f = o.minAxialFill ?? 0;
  if (f > 0) {
    let zBig = zs[0];
    for (const z of zs) if (bySlice.get(z)!.length > bySlice.get(zBig)!.length) zBig = z;
    const d = diam.get(zBig)!;
    if ((bySlice.get(zBig)!.length * rowMm * colMm) / ((Math.PI * d * d) / 4) < f) return 'tubular';
  }
  return null;
}

/** Contract post-processing (file comment). Returns a new label map. */
export function postprocessLiver(pred: Uint8Array, g: LiverGrid, opts: LiverPostprocessOptions): LiverPostprocessResult {
  const { minTumourMl } = opts;
  const { slices, rows, columns } = g;
  const vml = voxelMlOf(g);
  const out = new Uint8Array(pred.length);
  const liverMask = new Uint8Array(pred.length);
  for (let i = 0; i < pred.length; i++) liverMask[i] = pred[i] >= 1 ? 1 : 0;
  const liv = components26(liverMask, slices, rows, columns);
  if (liv.sizes.length === 1) return { labels: out, summary: 'no liver voxel predicted', removedLiverMl: 0, smallTumoursToLiver: 0, shapeToLiver: { flatEnd: 0, tubular: 0 } };
  let best = 1;
  for (let k = 2; k < liv.sizes.length; k++) if (liv.sizes[k] > liv.sizes[best]) best = k;
  let removed = 0;
  for (let i = 0; i < pred.length; i++) {
    if (liv.labels[i] === best) out[i] = pred[i] === 2 ? 2 : 1;
    else if (liv.labels[i]) removed++;
  }
  const tumourMask = new Uint8Array(pred.length);
  for (let i = 0; i < out.length; i++) tumourMask[i] = out[i] === 2 ? 1 : 0;
  const tum = components26(tumourMask, slices, rows, columns);
  const small = new Set<number>();
  for (let k = 1; k < tum.sizes.length; k++) if (tum.sizes[k] * vml < minTumourMl) small.add(k);
  const shapeToLiver = { flatEnd: 0, tubular: 0 };
  const drop = new Set(small);
  if ((opts.flatEndFactor ?? 0) > 0 || (opts.minAxialFill ?? 0) > 0) {
    const plane = rows * columns;
    for (let k = 1; k < tum.sizes.length; k++) {
      if (small.has(k)) continue;
      const rule = shapeRule(slicesOf(tum.members[k], plane), tum.labels, k, g, opts);
      if (rule) {
        drop.add(k);
        if (rule === 'flat end') shapeToLiver.flatEnd++;
        else shapeToLiver.tubular++;
      }
    }
  }
  if (drop.size) for (let i = 0; i < out.length; i++) if (tum.labels[i] && drop.has(tum.labels[i])) out[i] = 1;
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  const summary = [
    `largest 26-connected liver component kept (${liv.sizes.length - 1} component(s)${removed ? `; ${r2(removed * vml)} mL elsewhere set to background` : ''})`,
    `${small.size} tumour component(s) under ${minTumourMl} mL counted as liver`,
    ...((opts.flatEndFactor ?? 0) > 0 ? [`${shapeToLiver.flatEnd} tumour component(s) ending flat inside the series (an end slice's diameter > ${opts.flatEndFactor} x sqrt(slice spacing x longest diameter), which no rounded tumour shows) counted as liver`] : []),
    ...((opts.minAxialFill ?? 0) > 0 ? [`${shapeToLiver.tubular} tubular tumour component(s) (filling < ${opts.minAxialFill} of its diameter's circle on its largest slice: vessel-like) counted as liver`] : []),
  ].join('; ');
  return { labels: out, summary, removedLiverMl: removed * vml, smallTumoursToLiver: small.size, shapeToLiver };
}

export interface TumourMeasurement {
  /** 1-based, largest first. */
  index: number;
  voxels: number;
  ml: number;
  longestAxialDiameterMm: number;
  /** The slice (0-based, ascending along the normal) the longest axial diameter lies on. */
  diameterSlice: number;
  centroidVoxel: { slice: number; row: number; column: number };
  /** Patient coordinates (LPS, mm), when the geometry is given. */
  centroidLpsMm?: [number, number, number];
  /**
   * Where the centroid lies inside the segmented liver's own extent (patient right → left, top → bottom; 0..1), and
   * that in words ("upper, patient-right part of the segmented liver"). Not a Couinaud segment: no vessel is used.
   */
  location?: { rightToLeft: number; topToBottom: number; text: string };
}

export interface LiverMeasurements {
  /** Liver including its tumours (labels 1 + 2), mL. */
  liverMl: number;
  tumourMl: number;
  tumourCount: number;
  tumours: TumourMeasurement[];
  voxelMl: number;
}

/** Largest distance between two pixel centres of one slice's component (mm), over its 4-connected boundary pixels. */
function sliceDiameter(points: number[], rows: number, columns: number, rowMm: number, colMm: number, inSet: (p: number) => boolean): number {
  const edge: [number, number][] = [];
  for (const p of points) {
    const r = (p / columns) | 0;
    const c = p - r * columns;
    const interior = r > 0 && r < rows - 1 && c > 0 && c < columns - 1 && inSet(p - columns) && inSet(p + columns) && inSet(p - 1) && inSet(p + 1);
    if (!interior) edge.push([r * rowMm, c * colMm]);
  }
  let best = 0;
  for (let i = 0; i < edge.length; i++) {
    const [ai, bi] = edge[i];
    for (let j = i + 1; j < edge.length; j++) {
      const dr = ai - edge[j][0];
      const dc = bi - edge[j][1];
      const d = dr * dr + dc * dc;
      if (d > best) best = d;
    }
  }
  return Math.sqrt(best);
}

/** Measurements of a post-processed label map (file comment). */
export function measureLiver(labels: Uint8Array, g: LiverGrid, geometry?: Pick<VolumeGeometry, 'rowCosines' | 'columnCosines' | 'slicePositions'>): LiverMeasurements {
  const { slices, rows, columns } = g;
  const [rowMm, colMm] = g.pixelSpacing;
  const vml = voxelMlOf(g);
  const plane = rows * columns;
  let liver = 0;
  let tumour = 0;
  const tumourMask = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= 1) liver++;
    if (labels[i] === 2) {
      tumour++;
      tumourMask[i] = 1;
    }
  }
  // the liver's extent in patient coordinates (LPS: x grows to the patient's left, z to the head)
  const ext = { x0: Infinity, x1: -Infinity, z0: Infinity, z1: -Infinity };
  const lps = (z: number, r: number, c: number, a: number): number =>
    geometry!.slicePositions[z][a] + geometry!.rowCosines[a] * c * colMm + geometry!.columnCosines[a] * r * rowMm;
  if (geometry && geometry.slicePositions.length === slices && liver) {
    for (let i = 0; i < labels.length; i++) {
      if (!labels[i]) continue;
      const z = (i / plane) | 0;
      const p = i - z * plane;
      const r = (p / columns) | 0;
      const c = p - r * columns;
      const x = lps(z, r, c, 0);
      const zz = lps(z, r, c, 2);
      if (x < ext.x0) ext.x0 = x;
      if (x > ext.x1) ext.x1 = x;
      if (zz < ext.z0) ext.z0 = zz;
      if (zz > ext.z1) ext.z1 = zz;
    }
  }
  const { labels: comp, sizes } = components26(tumourMask, slices, rows, columns);
  const nT = sizes.length - 1;
  const sum = Array.from({ length: nT + 1 }, () => [0, 0, 0]);
  /** per component, per slice: the in-plane voxel indices */
  const bySlice = Array.from({ length: nT + 1 }, () => new Map<number, number[]>());
  for (let i = 0; i < comp.length; i++) {
    const k = comp[i];
    if (!k) continue;
    const z = (i / plane) | 0;
    const p = i - z * plane;
    const r = (p / columns) | 0;
    const c = p - r * columns;
    sum[k][0] += z;
    sum[k][1] += r;
    sum[k][2] += c;
    let l = bySlice[k].get(z);
    if (!l) bySlice[k].set(z, (l = []));
    l.push(p);
  }
  const tumours: TumourMeasurement[] = [];
  for (let k = 1; k <= nT; k++) {
    let best = 0;
    let bestZ = -1;
    for (const [z, pts] of bySlice[k]) {
      const off = z * plane;
      const d = sliceDiameter(pts, rows, columns, rowMm, colMm, (p) => comp[off + p] === k);
      if (bestZ < 0 || d > best) {
        best = d;
        bestZ = z;
      }
    }
    const n = sizes[k];
    const cv = { slice: sum[k][0] / n, row: sum[k][1] / n, column: sum[k][2] / n };
    const t: TumourMeasurement = { index: 0, voxels: n, ml: n * vml, longestAxialDiameterMm: best + rowMm, diameterSlice: bestZ, centroidVoxel: cv };
    if (geometry && geometry.slicePositions.length === slices) {
      const z0 = Math.min(slices - 1, Math.floor(cv.slice));
      const z1 = Math.min(slices - 1, z0 + 1);
      const f = cv.slice - z0;
      const p0 = geometry.slicePositions[z0];
      const p1 = geometry.slicePositions[z1];
      const ipp = [0, 1, 2].map((a) => p0[a] + f * (p1[a] - p0[a]));
      t.centroidLpsMm = [0, 1, 2].map((a) => ipp[a] + geometry.rowCosines[a] * cv.column * colMm + geometry.columnCosines[a] * cv.row * rowMm) as [number, number, number];
      if (ext.x1 > ext.x0 && ext.z1 > ext.z0) {
        const rl = Math.min(1, Math.max(0, (t.centroidLpsMm[0] - ext.x0) / (ext.x1 - ext.x0)));
        const tb = Math.min(1, Math.max(0, (ext.z1 - t.centroidLpsMm[2]) / (ext.z1 - ext.z0)));
        const third = (f: number, w: [string, string, string]) => (f < 1 / 3 ? w[0] : f < 2 / 3 ? w[1] : w[2]);
        const pct = (f: number) => `${Math.round(f * 100)} %`;
        t.location = {
          rightToLeft: rl,
          topToBottom: tb,
          text: `${third(tb, ['upper', 'middle', 'lower'])} third, ${third(rl, ['patient-right', 'middle', 'patient-left'])} third of the segmented liver (centroid ${pct(rl)} of its right-to-left and ${pct(tb)} of its top-to-bottom extent)`,
        };
      }
    }
    tumours.push(t);
  }
  tumours.sort((a, b) => b.voxels - a.voxels); // stable: equal sizes keep raster order
  tumours.forEach((t, i) => (t.index = i + 1));
  return { liverMl: liver * vml, tumourMl: tumour * vml, tumourCount: nT, tumours, voxelMl: vml };
}
