/**
 * Brain mask for structural MR (any of FLAIR, T1, T1C, T2, already on one grid: src/study/grid.ts),
 * a classic method, contrast-agnostic by construction: every threshold is relative to the intensity
 * of the deep brain in each sequence, never an absolute value.
 *
 *  1. Head: per sequence, values clipped at the 99.5th percentile of the positive voxels and scaled
 *     to [0, 1]; Otsu over all voxels; head = any sequence above 0.3 x its Otsu threshold (air and
 *     noise out), closed in-plane (5 mm), holes filled slice by slice, largest 3-D component.
 *  2. Depth: Euclidean distance (mm, anisotropic spacing) from each voxel to the outside of the head.
 *  3. Reference: the "deep superior" voxels, depth > 25 mm (relaxed in 5 mm steps when too few) and
 *     above the median patient height (LPS z) of the deep voxels; in a head they are brain in every
 *     contrast, also when the field of view holds the face and neck. Their per-sequence median is the
 *     brain reference intensity; their centroid the brain centre.
 *  4. Candidate: at least half of the sequences above `lowFraction` (0.6) x their reference (skull, air
 *     and the darkest CSF out) AND depth > `surfaceMm` (12 mm: scalp and skin out). Input already
 *     skull-stripped (BraTS) is recognised (`skullStripped: 'auto'`): background outside the head exactly 0
 *     in every sequence and less than 30 % of the outer 12 mm shell dark in at least one sequence (a
 *     skull makes that shell ≥ 37 % dark on Colin27); its mask is the filled head.
 *  5. In-plane erosion by a square of half-size `erodeMm` (5 mm) to cut the bridges through the skull,
 *     then the 6-connected 3-D component with the most voxels within `centreMm` (30 mm) of the brain
 *     centre (not simply the largest: the face can be larger), dilation back AND the candidate.
 *  5b. Regrowth, in-plane and geodesic, by `regrowMm` (6 mm) into intensity candidates deeper than
 *     `regrowDepthMm` (6 mm): brings back the cortex that lies less than 12 mm under the head surface.
 *  5c. A mask above 1900 mL (no adult brain is that large: a bridge to the face or neck survived) is redone
 *     with at least 1.5 mm (one pixel) more erosion, up to 9.5 mm (the Siemens sagittal MPRAGE with the neck in view:
 *     5 → 8 mm).
 *  6. In-plane closing (`closeMm`, 4 mm: sulcal CSF) and holes filled slice by slice (ventricles,
 *     lesions darker than the threshold inside the brain).
 * Measured in models/README.md "Brain extraction (MR)".
 */
import { VolumeGeometry } from '../../types';
import { fillHoles2d, largestComponent, squareFilter } from '../ct-brain-mask';

export interface BrainMaskOptions {
  lowFraction?: number;
  surfaceMm?: number;
  erodeMm?: number;
  closeMm?: number;
  centreMm?: number;
  deepMm?: number;
  /** Geodesic regrowth (mm, in-plane) of the kept brain into intensity candidates deeper than `regrowDepthMm`. */
  regrowMm?: number;
  regrowDepthMm?: number;
  /** A mask above this volume (mL) is redone with 1.5 mm more erosion, up to `maxErodeMm`. */
  maxPlausibleMl?: number;
  maxErodeMm?: number;
  /**
   * 'auto' (default): input with an exactly-0 background whose outer shell (depth ≤ surfaceMm) has no dark
   * skull band (fewer than `strippedDarkFraction` of the shell voxels dark in some sequence) is taken as
   * already skull-stripped, and the mask is the filled head itself. true / false force the choice.
   */
  skullStripped?: boolean | 'auto';
  strippedDarkFraction?: number;
}

export interface BrainMaskResult {
  /** 0/1 on the grid, slice-major then row-major. */
  mask: Uint8Array;
  volumeMl: number;
  /** What was done, in words (thresholds, reference intensities, components). */
  notes: string[];
  /** Fraction of the outer head shell (depth ≤ surfaceMm) below the intensity threshold: skull and CSF. */
  darkShellFraction: number;
  skullStripped: boolean;
}

/** Otsu threshold of values in [0, 1] (256 bins). */
export function otsu01(v: Float32Array): number {
  const h = new Float64Array(256);
  for (let i = 0; i < v.length; i++) h[Math.min(255, Math.max(0, Math.floor(v[i] * 256)))]++;
  let wt = 0;
  let mt = 0;
  for (let b = 0; b < 256; b++) {
    wt += h[b];
    mt += h[b] * (b + 0.5);
  }
  let w = 0;
  let m = 0;
  let best = 0;
  let bestB = 0;
  for (let b = 0; b < 255; b++) {
    w += h[b];
    m += h[b] * (b + 0.5);
    const w1 = wt - w;
    if (w === 0 || w1 === 0) continue;
    const between = (mt * w - m * wt) ** 2 / (w * w1);
    if (between > best) {
      best = between;
      bestB = b;
    }
  }
  return (bestB + 1) / 256;
}

function percentile(values: ArrayLike<number>, p: number, filter: (x: number) => boolean = () => true): number {
  const xs: number[] = [];
  const step = Math.max(1, Math.floor(values.length / 400000));
  for (let i = 0; i < values.length; i += step) if (filter(values[i])) xs.push(values[i]);
  if (xs.length === 0) return 0;
  xs.sort((a, b) => a - b);
  return xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
}

const FAR = 1e20;

/** Squared-distance transform along one line (Felzenszwalb & Huttenlocher 2012), sample spacing s. */
function edt1d(f: Float64Array, n: number, s: number, d: Float64Array, v: Int32Array, z: Float64Array): void {
  const ss = s * s;
  const meet = (q: number, p: number): number => (f[q] + ss * q * q - (f[p] + ss * p * p)) / (2 * ss * (q - p));
  let k = 0;
  v[0] = 0;
  z[0] = -Infinity;
  z[1] = Infinity;
  for (let q = 1; q < n; q++) {
    let sq = meet(q, v[k]);
    while (sq <= z[k]) {
      k--;
      sq = meet(q, v[k]);
    }
    k++;
    v[k] = q;
    z[k] = sq;
    z[k + 1] = Infinity;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1] < q) k++;
    d[q] = ss * (q - v[k]) ** 2 + f[v[k]];
  }
}

/** Euclidean distance (mm) from each foreground voxel to the nearest background voxel (beyond the volume is not background). */
export function distanceToOutside(m: Uint8Array, dims: [number, number, number], spacing: [number, number, number]): Float32Array {
  const [S, R, C] = dims;
  const n = Math.max(S, R, C);
  const f = new Float64Array(n);
  const d = new Float64Array(n);
  const v = new Int32Array(n);
  const z = new Float64Array(n + 1);
  const buf = new Float64Array(m.length);
  for (let i = 0; i < m.length; i++) buf[i] = m[i] ? FAR : 0;
  const run = (len: number, s: number, at: (line: number, i: number) => number, lines: number): void => {
    for (let l = 0; l < lines; l++) {
      for (let i = 0; i < len; i++) f[i] = buf[at(l, i)];
      edt1d(f, len, s, d, v, z);
      for (let i = 0; i < len; i++) buf[at(l, i)] = d[i];
    }
  };
  run(C, spacing[2], (l, i) => l * C + i, S * R);
  run(R, spacing[1], (l, i) => Math.floor(l / C) * R * C + i * C + (l % C), S * C);
  run(S, spacing[0], (l, i) => i * R * C + l, R * C);
  const out = new Float32Array(m.length);
  for (let i = 0; i < m.length; i++) out[i] = buf[i] >= FAR / 2 ? Infinity : Math.sqrt(buf[i]);
  return out;
}

/** 6-connected 3-D component labels (0 = background), and their count. */
function label3d(m: Uint8Array, S: number, R: number, C: number): { labels: Int32Array; count: number } {
  const labels = new Int32Array(m.length);
  const stack = new Int32Array(m.length);
  const plane = R * C;
  let next = 0;
  for (let i = 0; i < m.length; i++) {
    if (!m[i] || labels[i]) continue;
    next++;
    let sp = 0;
    stack[sp++] = i;
    labels[i] = next;
    while (sp) {
      const j = stack[--sp];
      const zz = Math.floor(j / plane);
      const rem = j - zz * plane;
      const y = Math.floor(rem / C);
      const x = rem - y * C;
      const push = (k: number): void => {
        if (m[k] && !labels[k]) {
          labels[k] = next;
          stack[sp++] = k;
        }
      };
      if (x > 0) push(j - 1);
      if (x < C - 1) push(j + 1);
      if (y > 0) push(j - C);
      if (y < R - 1) push(j + C);
      if (zz > 0) push(j - plane);
      if (zz < S - 1) push(j + plane);
    }
  }
  return { labels, count: next };
}

/** The brain mask on `geometry` from one or more co-registered sequences (see the file comment). */
export function brainMaskMr(volumes: Float32Array[], geometry: VolumeGeometry, options: BrainMaskOptions = {}): BrainMaskResult {
  const o = { lowFraction: 0.6, surfaceMm: 12, erodeMm: 5, closeMm: 4, centreMm: 30, deepMm: 25, regrowMm: 6, regrowDepthMm: 6, maxPlausibleMl: 1900, maxErodeMm: 9.5, skullStripped: 'auto' as boolean | 'auto', strippedDarkFraction: 0.3, ...options };
  const g = geometry;
  const S = g.slices;
  const R = g.rows;
  const C = g.columns;
  const N = S * R * C;
  if (volumes.length === 0) throw new Error('brain mask: no sequence given');
  for (const v of volumes) if (v.length !== N) throw new Error(`brain mask: a sequence holds ${v.length} voxels, the grid ${N}`);
  const notes: string[] = [];
  const inPlane = Math.min(g.pixelSpacing[0], g.pixelSpacing[1]);
  const rad = (mm: number): number => Math.max(1, Math.round(mm / inPlane));
  const voxelMl = (g.pixelSpacing[0] * g.pixelSpacing[1] * (S > 1 ? g.sliceSpacing : 1)) / 1000;

  // 1. head
  let head: Uint8Array = new Uint8Array(N);
  for (const v of volumes) {
    const hi = percentile(v, 99.5, (x) => x > 0) || 1;
    const n = new Float32Array(N);
    for (let i = 0; i < N; i++) n[i] = Math.min(1, Math.max(0, v[i] / hi));
    const t = otsu01(n);
    for (let i = 0; i < N; i++) if (n[i] > 0.3 * t) head[i] = 1;
  }
  const rc = rad(5);
  head = squareFilter(squareFilter(head, S, R, C, rc, 'max'), S, R, C, rc, 'min');
  head = largestComponent(fillHoles2d(head, S, R, C), S, R, C);

  // 2. depth, 3. reference
  const depth = distanceToOutside(head, [S, R, C], [S > 1 ? g.sliceSpacing : 1e6, g.pixelSpacing[0], g.pixelSpacing[1]]);
  let deepMm = o.deepMm;
  let deepCount = 0;
  for (;;) {
    deepCount = 0;
    for (let i = 0; i < N; i++) if (depth[i] > deepMm) deepCount++;
    if (deepCount >= 1000 || deepMm <= 5) break;
    deepMm -= 5;
  }
  const heightOf = (i: number): number => {
    const zz = Math.floor(i / (R * C));
    const rem = i - zz * R * C;
    const r = Math.floor(rem / C);
    const c = rem - r * C;
    const p = g.slicePositions[zz];
    return p[2] + c * g.pixelSpacing[1] * g.rowCosines[2] + r * g.pixelSpacing[0] * g.columnCosines[2];
  };
  const deepIdx: number[] = [];
  for (let i = 0; i < N; i++) if (depth[i] > deepMm) deepIdx.push(i);
  const heights = deepIdx.map(heightOf);
  const hMed = percentile(heights, 50);
  const ref = deepIdx.filter((_, k) => heights[k] >= hMed);
  if (ref.length === 0) return { mask: new Uint8Array(N), volumeMl: 0, notes: ['no deep head region found: no brain mask'], darkShellFraction: NaN, skullStripped: false };
  let cz = 0;
  let cr = 0;
  let cc = 0;
  for (const i of ref) {
    const zz = Math.floor(i / (R * C));
    const rem = i - zz * R * C;
    cz += zz;
    cr += Math.floor(rem / C);
    cc += rem % C;
  }
  cz /= ref.length;
  cr /= ref.length;
  cc /= ref.length;

  // 4. candidate (intensity: at least half of the sequences above their threshold), the dark fraction of
  // the outer shell per sequence, exact-zero background, then the depth limit
  const votes = new Uint8Array(N);
  const shellDark: number[] = [];
  let zeroOutside = 1;
  volumes.forEach((v, k) => {
    const refI = percentile(
      ref.map((i) => v[i]),
      50,
    );
    notes.push(`sequence ${k + 1}: brain reference intensity ${refI.toFixed(1)} (median of ${ref.length} deep superior voxels, depth > ${deepMm} mm)`);
    const thr = o.lowFraction * refI;
    let shell = 0;
    let dark = 0;
    let out = 0;
    let zero = 0;
    for (let i = 0; i < N; i++) {
      const above = v[i] > thr;
      if (above) votes[i]++;
      if (head[i]) {
        if (depth[i] <= o.surfaceMm) {
          shell++;
          if (!above) dark++;
        }
      } else {
        out++;
        if (v[i] === 0) zero++;
      }
    }
    shellDark.push(shell ? dark / shell : 0);
    zeroOutside = Math.min(zeroOutside, out ? zero / out : 1);
  });
  const need = Math.ceil(volumes.length / 2);
  const cand = new Uint8Array(N);
  for (let i = 0; i < N; i++) cand[i] = votes[i] >= need ? 1 : 0;
  const darkShellFraction = Math.min(...shellDark);
  const stripped = o.skullStripped === 'auto' ? zeroOutside >= 0.99 && darkShellFraction < o.strippedDarkFraction : o.skullStripped;
  notes.push(
    `outer ${o.surfaceMm} mm of the head: ${(100 * darkShellFraction).toFixed(1)} % dark (least of the sequences), background outside the head ${(100 * zeroOutside).toFixed(1)} % exactly 0 → ${stripped ? 'already skull-stripped: the mask is the filled head' : 'skull present'}${o.skullStripped === 'auto' ? ' (auto)' : ' (forced)'}`,
  );
  if (stripped) {
    let nh = 0;
    for (let i = 0; i < N; i++) nh += head[i];
    return { mask: head, volumeMl: nh * voxelMl, notes, darkShellFraction, skullStripped: true };
  }
  const intensityCand = cand.slice();
  for (let i = 0; i < N; i++) if (depth[i] <= o.surfaceMm) cand[i] = 0;

  const extract = (erodeMm: number): { mask: Uint8Array; volumeMl: number; count: number } => {
    // 5. erosion, component nearest the brain centre, dilation back
    const r = rad(erodeMm);
    const er = squareFilter(cand, S, R, C, r, 'min');
    const { labels, count } = label3d(er, S, R, C);
    if (count === 0) return { mask: new Uint8Array(N), volumeMl: 0, count: 0 };
    const near = new Float64Array(count + 1);
    const dz = S > 1 ? g.sliceSpacing : 1;
    const r2 = o.centreMm * o.centreMm;
    for (let i = 0; i < N; i++) {
      const l = labels[i];
      if (!l) continue;
      const zz = Math.floor(i / (R * C));
      const rem = i - zz * R * C;
      const rr = Math.floor(rem / C);
      const c = rem - rr * C;
      const d2 = ((zz - cz) * dz) ** 2 + ((rr - cr) * g.pixelSpacing[0]) ** 2 + ((c - cc) * g.pixelSpacing[1]) ** 2;
      near[l] += d2 <= r2 ? 1 : 1e-9; // a component far from the centre only wins when nothing is near
    }
    let best = 1;
    for (let l = 2; l <= count; l++) if (near[l] > near[best]) best = l;
    const keep = new Uint8Array(N);
    for (let i = 0; i < N; i++) keep[i] = labels[i] === best ? 1 : 0;
    const dil = squareFilter(keep, S, R, C, r, 'max');
    for (let i = 0; i < N; i++) dil[i] &= cand[i];
    let grown = dil;
    for (let k = 0; k < Math.round(o.regrowMm / inPlane); k++) {
      grown = squareFilter(grown, S, R, C, 1, 'max');
      for (let i = 0; i < N; i++) grown[i] &= intensityCand[i] & (depth[i] > o.regrowDepthMm ? 1 : 0);
    }

    // 6. closing, holes
    const cr2 = rad(o.closeMm);
    const closed = squareFilter(squareFilter(grown, S, R, C, cr2, 'max'), S, R, C, cr2, 'min');
    const mask = fillHoles2d(closed, S, R, C);
    let nv = 0;
    for (let i = 0; i < N; i++) nv += mask[i];
    const volumeMl = nv * voxelMl;
    return { mask, volumeMl, count };
  };
  // A mask beyond any adult brain (the face or neck joined through a bridge the erosion did not cut, as on a
  // sagittal 3-D T1 with the neck in view): erode more, 1.5 mm at a time, up to maxErodeMm.
  let erodeMm = o.erodeMm;
  let res = extract(erodeMm);
  // (at least one more pixel of radius each time, so that every retry changes the mask)
  const nextErode = (mm: number): number => Math.max(mm + 1.5, (rad(mm) + 1) * inPlane);
  while (res.volumeMl > o.maxPlausibleMl && nextErode(erodeMm) <= o.maxErodeMm) {
    notes.push(`${res.volumeMl.toFixed(0)} mL with erosion ${erodeMm} mm is more than ${o.maxPlausibleMl} mL: erosion ${nextErode(erodeMm)} mm`);
    erodeMm = nextErode(erodeMm);
    res = extract(erodeMm);
  }
  const { mask, volumeMl, count } = res;
  if (count === 0) return { mask, volumeMl: 0, notes: [...notes, 'nothing left after erosion: no brain mask'], darkShellFraction, skullStripped: false };
  notes.push(
    `brain mask ${volumeMl.toFixed(0)} mL from ${volumes.length} sequence(s): > ${o.lowFraction} x reference, depth > ${o.surfaceMm} mm, erosion ${erodeMm} mm, component nearest the centre (${count} after erosion)`,
  );
  return { mask, volumeMl, notes, darkShellFraction, skullStripped: false };
}
