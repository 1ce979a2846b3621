/**
 * Diffusion derivatives computed by the node when the scanner did not send them:
 * the isotropic trace per b-value (geometric mean over gradient directions) and the ADC map
 * (mono-exponential, two points: ADC = ln(S_b0 / S_b) / b, in 10^-6 mm²/s).
 */
import { Volume } from '../types';

/** Geometric mean over directions, voxel by voxel; non-positive signals are floored at 1e-3. */
export function geometricMeanTrace(directions: Volume[], bValue: number): Volume {
  if (directions.length === 0) throw new Error('no directions');
  const n = directions[0].data.length;
  for (const d of directions) if (d.data.length !== n) throw new Error('directions differ in size');
  const out = new Float32Array(n);
  const k = directions.length;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.log(Math.max(directions[j].data[i], 1e-3));
    out[i] = Math.exp(s / k);
  }
  const first = directions[0];
  return {
    kind: 'DWI',
    geometry: { ...first.geometry, warnings: [...first.geometry.warnings] },
    data: out,
    // The trace slice z is derived from every direction's slice z; reference the first direction's
    // instances (the results stage needs one source a slice).
    sliceSources: first.sliceSources,
    bValue,
    computed: k > 1 ? true : first.computed,
    seriesInstanceUid: first.seriesInstanceUid,
    seriesDescription: first.seriesDescription,
  };
}

/**
 * Noise floor for the ADC: voxels whose b0 signal is below `fraction` of the median b0 of the
 * foreground (voxels at or above the volume mean) are background and get ADC 0, as scanners do.
 */
export function b0NoiseFloor(b0: Float32Array, fraction = 0.1): number {
  let sum = 0;
  for (let i = 0; i < b0.length; i++) sum += b0[i];
  const mean = sum / Math.max(1, b0.length);
  const fg: number[] = [];
  for (let i = 0; i < b0.length; i++) if (b0[i] >= mean && b0[i] > 0) fg.push(b0[i]);
  if (fg.length === 0) return mean;
  fg.sort((a, b) => a - b);
  return fraction * fg[fg.length >> 1];
}

export const ADC_MAX = 5000; // 10^-6 mm²/s; above free water at body temperature (~3000–3400)

/** ADC in 10^-6 mm²/s from a b0 and a high-b trace on the same grid. */
export function computeAdc(b0: Volume, dwi: Volume, bValue: number): Volume {
  if (b0.data.length !== dwi.data.length) throw new Error('b0 and DWI grids differ');
  if (!(bValue > 0)) throw new Error('b-value must be > 0');
  const floor = b0NoiseFloor(b0.data);
  const out = new Float32Array(b0.data.length);
  const scale = 1e6 / bValue;
  for (let i = 0; i < out.length; i++) {
    const s0 = b0.data[i];
    if (!(s0 > floor)) continue; // background: 0
    const sb = Math.max(dwi.data[i], 1e-3);
    const adc = Math.log(s0 / sb) * scale;
    out[i] = adc < 0 ? 0 : adc > ADC_MAX ? ADC_MAX : adc;
  }
  return {
    kind: 'ADC',
    geometry: { ...dwi.geometry, warnings: [...dwi.geometry.warnings] },
    data: out,
    sliceSources: dwi.sliceSources,
    computed: true,
    seriesInstanceUid: dwi.seriesInstanceUid,
    seriesDescription: dwi.seriesDescription,
  };
}
