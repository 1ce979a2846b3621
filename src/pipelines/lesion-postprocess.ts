/**
 * False-positive control of the stroke MR route's lesion mask, after the model and before the SEG, by rules that
 * follow the physics of an acute infarct rather than the look of the image (issue 17). Each rule can be switched
 * off (config `lesionPostprocess`) and what it did is returned as a report that goes into the provenance of the
 * SEG and the SR.
 *
 *  1. Brain mask on the b0 (else the trace DWI): `otsuFactor` x the Otsu threshold (below 1, so that the side of
 *     the brain far from a multi-channel receive coil, darker by its profile, stays in), opened by an in-plane erosion of `openingMm`
 *     (the dark skull then separates scalp from brain), largest 3D component, dilated back inside the threshold,
 *     holes filled per slice, then eroded by `erodeMm` (the dura / CSF rim where a bright coil periphery meets
 *     partial volume). Components mostly outside it are dropped (`minInsideFraction`): scalp, skull, orbits and
 *     sinuses cannot hold an infarct.
 *  2. Minimum component size: 26-connected components smaller than max(`minVoxels`, `minVolumeMl` / voxel volume)
 *     are dropped (a size in mL, so the same rule on a 1 mm and on a 3 mm grid).
 *  3. Restricted diffusion: an acute infarct has an ADC of ~50-70 % of normal brain. Per 26-connected component,
 *     its median ADC divided by the median ADC of the normal-appearing brain of the same study (brain-mask voxels
 *     outside the lesion mask, CSF-like voxels above 1.5 x their first median left out) must be below
 *     `maxAdcRatio`; components that are bright on DWI without a low ADC (T2 shine-through, coil periphery,
 *     susceptibility pile-up) are dropped. A ratio to the same study's tissue does not depend on the b-value the
 *     ADC came from (both fall together at high b), unlike an absolute threshold.
 * The thresholds' defaults were chosen on the VAL phantom split (models/README.md "Post-processing").
 */
import { Volume } from '../types';
import { fillHoles2d, largestComponent, squareFilter } from './ct-brain-mask';

export interface LesionPostprocessOptions {
  /**
   * minInsideFraction > 0: a 26-connected component is dropped when less than this fraction of it lies inside the
   * brain mask, else kept whole (an infarct at the cortex keeps its edge voxels); 0: voxels outside are cut off.
   */
  brainMask: { enabled: boolean; otsuFactor: number; openingMm: number; erodeMm: number; minInsideFraction: number };
  minComponent: { enabled: boolean; minVolumeMl: number; minVoxels: number };
  restrictedDiffusion: { enabled: boolean; maxAdcRatio: number };
}

/** Defaults (chosen on the VAL phantom split; TEST and the real scans only report them). */
export const DEFAULT_LESION_POSTPROCESS: LesionPostprocessOptions = {
  brainMask: { enabled: true, otsuFactor: 0.7, openingMm: 4, erodeMm: 0, minInsideFraction: 0.5 },
  minComponent: { enabled: true, minVolumeMl: 0.01, minVoxels: 2 },
  restrictedDiffusion: { enabled: true, maxAdcRatio: 0.85 },
};

export interface LesionPostprocessReport {
  /** What each rule did, in words (for provenance and the SR). */
  summary: string;
  brainMask?: { source: 'b0' | 'DWI'; brainVoxels: number; removedVoxels: number; removedComponents: number };
  minComponent?: { minVoxels: number; removedComponents: number; removedVoxels: number };
  restrictedDiffusion?: {
    /** median ADC (x10^-6 mm²/s) of the normal-appearing brain */
    referenceAdc: number;
    removedComponents: number;
    removedVoxels: number;
    /** every component judged: its size, median ADC and ratio to the reference */
    components: { voxels: number; medianAdc: number; ratio: number; kept: boolean }[];
  };
  skipped: string[];
  componentsBefore: number;
  componentsAfter: number;
  voxelsBefore: number;
  voxelsAfter: number;
}

export interface PostprocessInputs {
  /** The grid of the mask (the trace DWI, or the ADC when there is no DWI). */
  ref: Volume;
  dwi?: Volume;
  b0?: Volume;
  adc?: Volume;
  /** A brain mask already computed with the same options on the b0 / DWI (evaluation re-uses it across variants). */
  brain?: { mask: Uint8Array; source: 'b0' | 'DWI' };
}

const sameGrid = (a: Volume, b: Volume): boolean =>
  a.geometry.rows === b.geometry.rows && a.geometry.columns === b.geometry.columns && a.geometry.slices === b.geometry.slices;

/** Otsu threshold of the values (256 bins between the minimum and the 99.9th percentile). */
export function otsuThreshold(data: Float32Array): number {
  const n = data.length;
  if (!n) return 0;
  let lo = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    if (data[i] < lo) lo = data[i];
    if (data[i] > max) max = data[i];
  }
  if (!(max > lo)) return lo;
  // 99.9th percentile from a fine histogram (one bright vessel or artefact must not squeeze the tissue into a few bins)
  const fine = new Float64Array(4096);
  const fw = (max - lo) / fine.length;
  for (let i = 0; i < n; i++) fine[Math.min(fine.length - 1, Math.floor((data[i] - lo) / fw))]++;
  let acc = 0;
  let hiBin = fine.length - 1;
  for (let k = 0; k < fine.length; k++) {
    acc += fine[k];
    if (acc >= 0.999 * n) {
      hiBin = k;
      break;
    }
  }
  const hi = lo + (hiBin + 1) * fw;
  if (!(hi > lo)) return lo;
  const bins = 256;
  const hist = new Float64Array(bins);
  const w = (hi - lo) / bins;
  for (let i = 0; i < n; i++) hist[Math.min(bins - 1, Math.max(0, Math.floor((data[i] - lo) / w)))]++;
  let sumAll = 0;
  for (let k = 0; k < bins; k++) sumAll += k * hist[k];
  let wB = 0;
  let sumB = 0;
  let best = -1;
  let bestK = 0;
  for (let k = 0; k < bins; k++) {
    wB += hist[k];
    if (!wB) continue;
    const wF = n - wB;
    if (!wF) break;
    sumB += k * hist[k];
    const mB = sumB / wB;
    const mF = (sumAll - sumB) / wF;
    const between = wB * wF * (mB - mF) * (mB - mF);
    if (between > best) {
      best = between;
      bestK = k;
    }
  }
  return lo + (bestK + 1) * w;
}

/** Brain mask (0/1) of a diffusion study on the grid of `img` (the b0, else the trace DWI). */
export function diffusionBrainMask(img: Volume, openingMm = 4, erodeMm = 2, otsuFactor = 1): Uint8Array {
  const g = img.geometry;
  const { slices, rows, columns: cols } = g;
  const t = otsuFactor * otsuThreshold(img.data);
  const fg = new Uint8Array(img.data.length);
  for (let i = 0; i < fg.length; i++) fg[i] = img.data[i] > t ? 1 : 0;
  const px = Math.min(g.pixelSpacing[0], g.pixelSpacing[1]);
  const r = Math.max(1, Math.round(openingMm / px));
  const keep = largestComponent(squareFilter(fg, slices, rows, cols, r, 'min'), slices, rows, cols);
  const dil = squareFilter(keep, slices, rows, cols, r, 'max');
  for (let i = 0; i < dil.length; i++) dil[i] &= fg[i];
  let brain = fillHoles2d(dil, slices, rows, cols);
  const e = Math.round(erodeMm / px);
  if (e > 0) brain = squareFilter(brain, slices, rows, cols, e, 'min');
  return brain;
}

/** 26-connected components of a 0/1 mask: label per voxel (0 = none) and the voxel indices of each component. */
export function components26(m: Uint8Array, slices: number, rows: number, cols: number): { labels: Int32Array; members: number[][] } {
  const labels = new Int32Array(m.length);
  const members: number[][] = [];
  const plane = rows * cols;
  // a typed, growable stack and integer division: the liver task labels components of millions of voxels
  let stack = new Int32Array(4096);
  let top = 0;
  for (let i = 0; i < m.length; i++) {
    if (!m[i] || labels[i]) continue;
    const id = members.length + 1;
    const list: number[] = [];
    labels[i] = id;
    stack[top++] = i;
    while (top) {
      const j = stack[--top];
      list.push(j);
      const z = (j / plane) | 0;
      const rem = j - z * plane;
      const y = (rem / cols) | 0;
      const x = rem - y * cols;
      for (let dz = -1; dz <= 1; dz++) {
        const zz = z + dz;
        if (zz < 0 || zz >= slices) continue;
        for (let dy = -1; dy <= 1; dy++) {
          const yy = y + dy;
          if (yy < 0 || yy >= rows) continue;
          for (let dx = -1; dx <= 1; dx++) {
            const xx = x + dx;
            if (xx < 0 || xx >= cols) continue;
            const k = zz * plane + yy * cols + xx;
            if (m[k] && !labels[k]) {
              labels[k] = id;
              if (top === stack.length) {
                const grown = new Int32Array(stack.length * 2);
                grown.set(stack);
                stack = grown;
              }
              stack[top++] = k;
            }
          }
        }
      }
    }
    members.push(list);
  }
  return { labels, members };
}

function median(values: number[]): number {
  if (!values.length) return NaN;
  const s = Float64Array.from(values).sort();
  return s[Math.floor(s.length / 2)];
}

/**
 * Median ADC of the normal-appearing brain: brain voxels outside the lesion mask with ADC > 0; CSF-like voxels
 * (above 1.5 x that first median) left out and the median taken again.
 */
export function normalBrainAdc(adc: Float32Array, brain: Uint8Array | undefined, lesion: Uint8Array): number {
  const v: number[] = [];
  for (let i = 0; i < adc.length; i++) if ((!brain || brain[i]) && !lesion[i] && adc[i] > 0 && Number.isFinite(adc[i])) v.push(adc[i]);
  const m1 = median(v);
  if (!Number.isFinite(m1)) return NaN;
  return median(v.filter((x) => x < 1.5 * m1));
}

/** Apply the enabled rules to a lesion mask (on `inputs.ref`'s grid); returns the new mask and what was done. */
export function postprocessLesionMask(
  mask: Uint8Array,
  inputs: PostprocessInputs,
  opts: LesionPostprocessOptions = DEFAULT_LESION_POSTPROCESS,
): { mask: Uint8Array; report: LesionPostprocessReport; brain?: Uint8Array } {
  const g = inputs.ref.geometry;
  const { slices, rows, columns: cols } = g;
  if (mask.length !== slices * rows * cols) throw new Error(`mask has ${mask.length} voxels, the reference grid ${slices * rows * cols}`);
  const voxelMl = (g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
  const out = Uint8Array.from(mask);
  const skipped: string[] = [];
  const parts: string[] = [];
  const count = (m: Uint8Array) => m.reduce((s, x) => s + x, 0);
  const voxelsBefore = count(mask);
  const componentsBefore = components26(mask, slices, rows, cols).members.length;
  const report: LesionPostprocessReport = { summary: '', skipped, componentsBefore, componentsAfter: 0, voxelsBefore, voxelsAfter: 0 };

  // 1. brain mask
  let brain: Uint8Array | undefined;
  const brainSource = inputs.b0 && sameGrid(inputs.b0, inputs.ref) ? inputs.b0 : inputs.dwi && sameGrid(inputs.dwi, inputs.ref) ? inputs.dwi : undefined;
  if (inputs.brain) brain = inputs.brain.mask;
  else if (brainSource) brain = diffusionBrainMask(brainSource, opts.brainMask.openingMm, opts.brainMask.erodeMm, opts.brainMask.otsuFactor);
  if (opts.brainMask.enabled) {
    if (brain) {
      let removed = 0;
      let removedComponents = 0;
      const minIn = opts.brainMask.minInsideFraction;
      if (minIn > 0) {
        for (const c of components26(out, slices, rows, cols).members) {
          let inside = 0;
          for (const i of c) inside += brain[i];
          if (inside < minIn * c.length) {
            for (const i of c) out[i] = 0;
            removed += c.length;
            removedComponents++;
          }
        }
      } else {
        for (let i = 0; i < out.length; i++) {
          if (out[i] && !brain[i]) {
            out[i] = 0;
            removed++;
          }
        }
      }
      const source = inputs.brain ? inputs.brain.source : brainSource === inputs.b0 ? 'b0' : 'DWI';
      report.brainMask = { source, brainVoxels: count(brain), removedVoxels: removed, removedComponents };
      parts.push(
        `brain mask (${source}, ${opts.brainMask.otsuFactor} x Otsu, opening ${opts.brainMask.openingMm} mm, erosion ${opts.brainMask.erodeMm} mm) removed ` +
          (minIn > 0 ? `${removedComponents} components less than ${Math.round(minIn * 100)} % inside it (${removed} voxels)` : `${removed} voxels outside it`),
      );
    } else skipped.push('brain mask: no b0 or DWI on the lesion grid');
  }

  // 2. minimum component size
  if (opts.minComponent.enabled) {
    const minVoxels = Math.max(opts.minComponent.minVoxels, Math.ceil(opts.minComponent.minVolumeMl / voxelMl - 1e-9));
    const { members } = components26(out, slices, rows, cols);
    let rc = 0;
    let rv = 0;
    for (const c of members) {
      if (c.length < minVoxels) {
        for (const i of c) out[i] = 0;
        rc++;
        rv += c.length;
      }
    }
    report.minComponent = { minVoxels, removedComponents: rc, removedVoxels: rv };
    parts.push(`minimum component ${opts.minComponent.minVolumeMl} mL (${minVoxels} voxels) removed ${rc} of ${members.length} components`);
  }

  // 3. restricted diffusion per component
  if (opts.restrictedDiffusion.enabled) {
    const adc = inputs.adc && sameGrid(inputs.adc, inputs.ref) ? inputs.adc : undefined;
    if (!adc) skipped.push('restricted-diffusion check: no ADC on the lesion grid');
    else {
      const ref = normalBrainAdc(adc.data, brain, mask);
      if (!Number.isFinite(ref) || ref <= 0) skipped.push('restricted-diffusion check: no normal-appearing brain ADC');
      else {
        const { members } = components26(out, slices, rows, cols);
        const judged: NonNullable<LesionPostprocessReport['restrictedDiffusion']>['components'] = [];
        let rc = 0;
        let rv = 0;
        for (const c of members) {
          const vals = c.map((i) => adc.data[i]).filter((x) => x > 0 && Number.isFinite(x));
          // no ADC inside the component (outside the ADC's coverage): nothing to judge it by, so it stays
          const med = vals.length ? median(vals) : NaN;
          const ratio = med / ref;
          const kept = !Number.isFinite(ratio) || ratio < opts.restrictedDiffusion.maxAdcRatio;
          judged.push({ voxels: c.length, medianAdc: Math.round(med), ratio: Math.round(ratio * 1000) / 1000, kept });
          if (!kept) {
            for (const i of c) out[i] = 0;
            rc++;
            rv += c.length;
          }
        }
        report.restrictedDiffusion = { referenceAdc: Math.round(ref), removedComponents: rc, removedVoxels: rv, components: judged };
        parts.push(
          `restricted-diffusion check (component median ADC < ${opts.restrictedDiffusion.maxAdcRatio} x normal-appearing brain ${Math.round(ref)} x10-6 mm2/s) removed ${rc} of ${members.length} components`,
        );
      }
    }
  }
  report.voxelsAfter = count(out);
  report.componentsAfter = components26(out, slices, rows, cols).members.length;
  const off = [
    !opts.brainMask.enabled && 'brain mask',
    !opts.minComponent.enabled && 'minimum size',
    !opts.restrictedDiffusion.enabled && 'restricted-diffusion check',
  ].filter(Boolean);
  report.summary =
    `Lesion post-processing: ${parts.length ? parts.join('; ') : 'none'}` +
    (off.length ? `; switched off: ${off.join(', ')}` : '') +
    (skipped.length ? `; skipped: ${skipped.join('; ')}` : '') +
    `; ${report.componentsBefore} -> ${report.componentsAfter} components, ${(voxelsBefore * voxelMl).toFixed(2)} -> ${(report.voxelsAfter * voxelMl).toFixed(2)} mL.`;
  return { mask: out, report, brain };
}
