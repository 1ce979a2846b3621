/**
 * A common grid for the structural MR sequences (FLAIR, T1, T1C, T2) of one study: one series is the
 * reference (its acquired slices, exactly: the SEG is written on them), every other sequence is
 * resampled onto it by patient coordinates (ImagePositionPatient / ImageOrientationPatient,
 * trilinear, 0 outside the source). Sequences on another FrameOfReferenceUID are refused with the
 * reason: the node has no registration step, and patient coordinates of two frames of reference
 * cannot be compared.
 *
 * Reference choice (documented in src/study/README.md): the largest group of sequences that share
 * one FrameOfReferenceUID, and inside it the first present of `REFERENCE_ORDER` = T1C > FLAIR > T2 > T1.
 * Why this order: the three sub-regions are read on T1C (enhancing, necrotic core) and FLAIR
 * (oedema), so the SEG lands on the slices a radiologist reads them on; T1C is often the thin 3-D
 * acquisition; FLAIR and T2 next (2-D but cover the oedema); a native T1 last. Matrix size is not a
 * criterion: a 512² T2 next to 256² FLAIR/T1 (the Philips study) would only make every other
 * sequence 4 x larger without adding information.
 */
import { Vec3, Volume, VolumeGeometry, VolumeKind, SliceSource } from '../types';

export type StructuralKind = 'FLAIR' | 'T1' | 'T1C' | 'T2';
export const STRUCTURAL_KINDS: StructuralKind[] = ['FLAIR', 'T1', 'T1C', 'T2'];
export const REFERENCE_ORDER: StructuralKind[] = ['T1C', 'FLAIR', 'T2', 'T1'];

export interface CommonGrid {
  reference: StructuralKind;
  /** The reference series' own geometry (its acquired slices). */
  geometry: VolumeGeometry;
  sliceSources: SliceSource[];
  seriesInstanceUid: string;
  /** Every accepted sequence on the reference grid (the reference itself unchanged). */
  volumes: Partial<Record<StructuralKind, Float32Array>>;
  /** Sequences left out, with the reason (e.g. another frame of reference). */
  refused: { kind: StructuralKind; reason: string }[];
  /** What was decided, in words (for the study outcome). */
  notes: string[];
}

const dot = (a: Vec3, b: Vec3): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

/** Patient position (LPS mm) of voxel (z, r, c) of a geometry. */
export function voxelToPatient(g: VolumeGeometry, z: number, r: number, c: number): Vec3 {
  const p = g.slicePositions[z];
  return [0, 1, 2].map((i) => p[i] + c * g.pixelSpacing[1] * g.rowCosines[i] + r * g.pixelSpacing[0] * g.columnCosines[i]) as Vec3;
}

/** Bilinear sample of slice z at fractional (r, c); outside the slice (beyond half a pixel) → NaN. */
function bilinearAt(data: Float32Array, g: VolumeGeometry, z: number, r: number, c: number): number {
  const R = g.rows;
  const C = g.columns;
  if (r < -0.5 || c < -0.5 || r > R - 0.5 || c > C - 0.5) return NaN;
  const rr = Math.min(Math.max(r, 0), R - 1);
  const cc = Math.min(Math.max(c, 0), C - 1);
  const r0 = Math.floor(rr);
  const c0 = Math.floor(cc);
  const r1 = Math.min(r0 + 1, R - 1);
  const c1 = Math.min(c0 + 1, C - 1);
  const fr = rr - r0;
  const fc = cc - c0;
  const off = z * R * C;
  const a = data[off + r0 * C + c0];
  const b = data[off + r0 * C + c1];
  const d = data[off + r1 * C + c0];
  const e = data[off + r1 * C + c1];
  return (1 - fr) * ((1 - fc) * a + fc * b) + fr * ((1 - fc) * d + fc * e);
}

/**
 * Resample `src` onto the voxel centres of `ref` (trilinear by patient coordinates, 0 outside the
 * source). Through-plane: linear between the two source slices that bracket the point along the
 * source normal (each slice with its own ImagePositionPatient, so uneven spacing and gantry tilt are
 * honoured); within half a slice spacing beyond the first/last slice, that slice (a slab of its
 * thickness); further out → 0.
 */
export function resampleToGeometry(src: Volume, ref: VolumeGeometry): Float32Array {
  const g = src.geometry;
  const out = new Float32Array(ref.slices * ref.rows * ref.columns);
  const n = g.normal;
  const s = g.slicePositions.map((p) => dot(p, n));
  const half = (g.slices > 1 ? g.sliceSpacing : 1) / 2;
  const dr = ref.pixelSpacing[0];
  const dc = ref.pixelSpacing[1];
  const rc = g.rowCosines;
  const cc = g.columnCosines;
  const inPlane = (z: number, P: Vec3): [number, number] => {
    const o = g.slicePositions[z];
    const d: Vec3 = [P[0] - o[0], P[1] - o[1], P[2] - o[2]];
    return [dot(d, cc) / g.pixelSpacing[0], dot(d, rc) / g.pixelSpacing[1]];
  };
  const sample = (z: number, P: Vec3): number => {
    const [r, c] = inPlane(z, P);
    return bilinearAt(src.data, g, z, r, c);
  };
  const P: Vec3 = [0, 0, 0];
  for (let z = 0; z < ref.slices; z++) {
    const o = ref.slicePositions[z];
    for (let r = 0; r < ref.rows; r++) {
      for (let c = 0; c < ref.columns; c++) {
        for (let i = 0; i < 3; i++) P[i] = o[i] + c * dc * ref.rowCosines[i] + r * dr * ref.columnCosines[i];
        const sp = dot(P, n);
        let v = NaN;
        if (sp <= s[0]) {
          if (s[0] - sp <= half + 1e-6) v = sample(0, P);
        } else if (sp >= s[s.length - 1]) {
          if (sp - s[s.length - 1] <= half + 1e-6) v = sample(s.length - 1, P);
        } else {
          let lo = 0;
          let hi = s.length - 1;
          while (hi - lo > 1) {
            const m = (lo + hi) >> 1;
            if (s[m] <= sp) lo = m;
            else hi = m;
          }
          const t = (sp - s[lo]) / (s[hi] - s[lo]);
          const a = sample(lo, P);
          const b = sample(hi, P);
          v = Number.isNaN(a) ? (t > 0.5 ? b : NaN) : Number.isNaN(b) ? (t < 0.5 ? a : NaN) : (1 - t) * a + t * b;
        }
        out[(z * ref.rows + r) * ref.columns + c] = Number.isNaN(v) ? 0 : v;
      }
    }
  }
  return out;
}

/** True when two geometries are the same voxel grid (no resampling needed). */
export function sameVoxelGrid(a: VolumeGeometry, b: VolumeGeometry, tolMm = 0.01): boolean {
  return (
    a.rows === b.rows &&
    a.columns === b.columns &&
    a.slices === b.slices &&
    Math.abs(a.pixelSpacing[0] - b.pixelSpacing[0]) < 1e-4 &&
    Math.abs(a.pixelSpacing[1] - b.pixelSpacing[1]) < 1e-4 &&
    a.rowCosines.every((x, i) => Math.abs(x - b.rowCosines[i]) < 1e-4) &&
    a.columnCosines.every((x, i) => Math.abs(x - b.columnCosines[i]) < 1e-4) &&
    a.slicePositions.every((p, i) => Math.hypot(p[0] - b.slicePositions[i][0], p[1] - b.slicePositions[i][1], p[2] - b.slicePositions[i][2]) < tolMm)
  );
}

export interface CommonGridOptions {
  /** Override the reference order (first present wins inside the chosen frame of reference). */
  referenceOrder?: StructuralKind[];
}

/**
 * Bring the available structural sequences onto one reference grid. Throws when none is given.
 */
export function commonGrid(vols: Partial<Record<VolumeKind, Volume | undefined>>, opts: CommonGridOptions = {}): CommonGrid {
  const order = opts.referenceOrder ?? REFERENCE_ORDER;
  const present = STRUCTURAL_KINDS.filter((k) => vols[k]);
  if (present.length === 0) throw new Error('no FLAIR, T1, T1C or T2 volume to put on a common grid');
  const rank = (k: StructuralKind): number => {
    const i = order.indexOf(k);
    return i < 0 ? order.length : i;
  };
  // Largest group sharing a frame of reference; ties: the group holding the best-ranked sequence.
  const groups = new Map<string, StructuralKind[]>();
  for (const k of present) {
    const f = vols[k]!.geometry.frameOfReferenceUid;
    groups.set(f, [...(groups.get(f) ?? []), k]);
  }
  const best = [...groups.entries()].sort(
    (a, b) => b[1].length - a[1].length || Math.min(...a[1].map(rank)) - Math.min(...b[1].map(rank)),
  )[0];
  const members = [...best[1]].sort((a, b) => rank(a) - rank(b));
  const reference = members[0];
  const refVol = vols[reference]!;
  const refG = refVol.geometry;
  const notes: string[] = [
    `reference grid: ${reference} (series …${refVol.seriesInstanceUid.slice(-12)}, ${refG.columns}x${refG.rows}x${refG.slices}, ` +
      `${refG.pixelSpacing[1]}x${refG.pixelSpacing[0]} mm, ${round(refG.sliceSpacing)} mm slices): first of ${order.join(' > ')} present` +
      (groups.size > 1 ? ` in the largest group sharing one FrameOfReferenceUID (${best[1].length} of ${present.length})` : ''),
  ];
  const refused: CommonGrid['refused'] = [];
  const volumes: CommonGrid['volumes'] = { [reference]: refVol.data };
  for (const k of present) {
    if (k === reference) continue;
    const v = vols[k]!;
    if (v.geometry.frameOfReferenceUid !== refG.frameOfReferenceUid) {
      const reason =
        `${k} is on FrameOfReferenceUID …${v.geometry.frameOfReferenceUid.slice(-16)}, the reference ${reference} on …${refG.frameOfReferenceUid.slice(-16)}: ` +
        'patient coordinates of different frames of reference cannot be compared and the node has no registration step, so it is left out';
      refused.push({ kind: k, reason });
      notes.push(reason);
      continue;
    }
    if (sameVoxelGrid(v.geometry, refG)) {
      volumes[k] = v.data;
      notes.push(`${k}: already on the reference grid`);
    } else {
      volumes[k] = resampleToGeometry(v, refG);
      const g = v.geometry;
      notes.push(
        `${k}: ${g.columns}x${g.rows}x${g.slices} at ${g.pixelSpacing[1]}x${g.pixelSpacing[0]}x${round(g.sliceSpacing)} mm resampled onto the reference (trilinear by patient coordinates, 0 outside)`,
      );
    }
  }
  return { reference, geometry: refG, sliceSources: refVol.sliceSources, seriesInstanceUid: refVol.seriesInstanceUid, volumes, refused, notes };
}

const round = (x: number): number => Math.round(x * 100) / 100;
