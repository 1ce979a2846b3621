/**
 * Brain mask from a non-contrast head CT (HU), on the CT's own grid: the mask prior the CT→DWI
 * synthesis model was trained with. Identical to `ct_brain_mask` in models/training/phantoms.py:
 *  1. 3x3 in-plane mean of HU (edges replicated);
 *  2. candidate = -10 ≤ mean ≤ 90 HU (brain window: parenchyma and CSF; bone, air and fat excluded);
 *  3. in-plane erosion by a square of half-size r = max(1, round(3 mm / pixel spacing)) (cuts the thin
 *     bridges between brain and scalp/face soft tissue);
 *  4. the largest 3D 6-connected component (raster-order labels, first largest wins);
 *  5. dilation by the same square, AND the candidate;
 *  6. holes filled slice by slice (background 4-connected to the slice border stays background).
 */
import { Volume } from '../types';

function boxMean3(src: Float32Array, slices: number, rows: number, cols: number): Float32Array {
  // separable, edges replicated (scipy uniform_filter mode="nearest")
  const tmp = new Float32Array(src.length);
  const out = new Float32Array(src.length);
  for (let z = 0; z < slices; z++) {
    const o = z * rows * cols;
    for (let r = 0; r < rows; r++) {
      const ro = o + r * cols;
      for (let c = 0; c < cols; c++) {
        const a = src[ro + Math.max(0, c - 1)];
        const b = src[ro + c];
        const d = src[ro + Math.min(cols - 1, c + 1)];
        tmp[ro + c] = (a + b + d) / 3;
      }
    }
    for (let r = 0; r < rows; r++) {
      const up = o + Math.max(0, r - 1) * cols;
      const mid = o + r * cols;
      const dn = o + Math.min(rows - 1, r + 1) * cols;
      for (let c = 0; c < cols; c++) out[mid + c] = (tmp[up + c] + tmp[mid + c] + tmp[dn + c]) / 3;
    }
  }
  return out;
}

/**
 * Separable in-plane min (erode) or max (dilate) filter of a 0/1 mask over a (2r+1)^2 square, edges
 * replicated: per row/column a window sum over the edge-extended line (prefix sums, O(1) per pixel);
 * min = all ones in the window, max = any one.
 */
export function squareFilter(src: Uint8Array, slices: number, rows: number, cols: number, r: number, op: 'min' | 'max'): Uint8Array {
  const w = 2 * r + 1;
  const isMin = op === 'min';
  const pass = (input: Uint8Array, n: number, lines: number, at: (line: number, i: number) => number, out: Uint8Array) => {
    const pre = new Int32Array(n + 2 * r + 1);
    for (let l = 0; l < lines; l++) {
      pre[0] = 0;
      for (let k = 0; k < n + 2 * r; k++) pre[k + 1] = pre[k] + input[at(l, Math.min(n - 1, Math.max(0, k - r)))];
      for (let i = 0; i < n; i++) {
        const s = pre[i + w] - pre[i];
        out[at(l, i)] = isMin ? (s === w ? 1 : 0) : s > 0 ? 1 : 0;
      }
    }
  };
  const tmp = new Uint8Array(src.length);
  const out = new Uint8Array(src.length);
  const plane = rows * cols;
  // along columns (x) within each row, then along rows (y) within each column; lines = slices * rows / slices * cols
  pass(src, cols, slices * rows, (line, i) => line * cols + i, tmp);
  pass(tmp, rows, slices * cols, (line, i) => Math.floor(line / cols) * plane + i * cols + (line % cols), out);
  return out;
}

/** Keep the largest 6-connected 3D component (labels in raster order; ties: the first). */
export function largestComponent(m: Uint8Array, slices: number, rows: number, cols: number): Uint8Array {
  const labels = new Int32Array(m.length);
  const stack = new Int32Array(m.length);
  const plane = rows * cols;
  let next = 0;
  let bestLabel = 0;
  let bestSize = 0;
  for (let i = 0; i < m.length; i++) {
    if (!m[i] || labels[i]) continue;
    next++;
    let size = 0;
    let sp = 0;
    stack[sp++] = i;
    labels[i] = next;
    while (sp) {
      const j = stack[--sp];
      size++;
      const z = Math.floor(j / plane);
      const rem = j - z * plane;
      const y = Math.floor(rem / cols);
      const x = rem - y * cols;
      const push = (k: number) => {
        if (m[k] && !labels[k]) {
          labels[k] = next;
          stack[sp++] = k;
        }
      };
      if (x > 0) push(j - 1);
      if (x < cols - 1) push(j + 1);
      if (y > 0) push(j - cols);
      if (y < rows - 1) push(j + cols);
      if (z > 0) push(j - plane);
      if (z < slices - 1) push(j + plane);
    }
    if (size > bestSize) {
      bestSize = size;
      bestLabel = next;
    }
  }
  const out = new Uint8Array(m.length);
  if (bestLabel) for (let i = 0; i < m.length; i++) out[i] = labels[i] === bestLabel ? 1 : 0;
  return out;
}

/** Fill holes per slice: background not 4-connected to the border becomes foreground. */
export function fillHoles2d(m: Uint8Array, slices: number, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(m.length);
  const plane = rows * cols;
  const outside = new Uint8Array(plane);
  const stack = new Int32Array(plane);
  for (let z = 0; z < slices; z++) {
    const o = z * plane;
    outside.fill(0);
    let sp = 0;
    const seed = (k: number) => {
      if (!m[o + k] && !outside[k]) {
        outside[k] = 1;
        stack[sp++] = k;
      }
    };
    for (let x = 0; x < cols; x++) {
      seed(x);
      seed((rows - 1) * cols + x);
    }
    for (let y = 0; y < rows; y++) {
      seed(y * cols);
      seed(y * cols + cols - 1);
    }
    while (sp) {
      const k = stack[--sp];
      const y = Math.floor(k / cols);
      const x = k - y * cols;
      if (x > 0) seed(k - 1);
      if (x < cols - 1) seed(k + 1);
      if (y > 0) seed(k - cols);
      if (y < rows - 1) seed(k + cols);
    }
    for (let k = 0; k < plane; k++) out[o + k] = outside[k] ? 0 : 1;
  }
  return out;
}

/** The brain mask (0/1) of a CT volume in HU, on its own grid. */
export function ctBrainMask(ct: Volume): Uint8Array {
  const g = ct.geometry;
  const { slices, rows, columns: cols } = g;
  const mean = boxMean3(ct.data, slices, rows, cols);
  const cand = new Uint8Array(mean.length);
  for (let i = 0; i < mean.length; i++) cand[i] = mean[i] >= -10 && mean[i] <= 90 ? 1 : 0;
  const r = Math.max(1, Math.round(3.0 / g.pixelSpacing[0]));
  const er = squareFilter(cand, slices, rows, cols, r, 'min');
  const keep = largestComponent(er, slices, rows, cols);
  const dil = squareFilter(keep, slices, rows, cols, r, 'max');
  for (let i = 0; i < dil.length; i++) dil[i] = dil[i] & cand[i];
  return fillHoles2d(dil, slices, rows, cols);
}
