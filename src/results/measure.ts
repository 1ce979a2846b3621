/** Measurements the SR reports, computed on the source grid. */
import type { Volume } from '../types';

/** The ADC threshold of the ischaemic core (x10^-6 mm²/s), as used by RAPID and DEFUSE-3. */
export const ADC_CORE_THRESHOLD = 620;

/**
 * Volume (mL) of voxels with ADC < threshold inside a region mask (the lesion, or a brain mask), on
 * the ADC grid. ADC values in 10^-6 mm²/s (Volume convention); zero / non-finite voxels (background,
 * outside the acquisition) are not counted.
 */
export function adcCoreVolumeMl(adc: Volume, region: Uint8Array, threshold = ADC_CORE_THRESHOLD): number {
  const g = adc.geometry;
  if (region.length !== adc.data.length) throw new Error(`region has ${region.length} voxels, the ADC ${adc.data.length}`);
  let n = 0;
  for (let i = 0; i < region.length; i++) {
    const v = adc.data[i];
    if (region[i] && Number.isFinite(v) && v > 0 && v < threshold) n++;
  }
  return (n * g.pixelSpacing[0] * g.pixelSpacing[1] * g.sliceSpacing) / 1000;
}

/** b-values (s/mm²) for which the 620 threshold is taken as valid: it was defined on ADC maps from b ≈ 1000. */
export const ADC_CORE_B_RANGE: [number, number] = [800, 1200];

/**
 * Whether the ADC < 620 core threshold means what it means in RAPID / DEFUSE-3 for an ADC computed at `bValue`.
 * The apparent ADC of tissue falls as b rises (diffusion kurtosis: healthy parenchyma reads ~710 at b = 2500
 * against ~800 at b = 1000), so at high b the 620 threshold marks healthy brain as core, and at low b it misses
 * core. No conversion is attempted: the ratio between the two depends on the tissue's kurtosis, which one
 * two-point ADC cannot tell. Returns the sentence the SR carries either way.
 */
export function coreThresholdValidity(bValue: number | undefined, threshold = ADC_CORE_THRESHOLD): { applies: boolean; note: string } {
  const [lo, hi] = ADC_CORE_B_RANGE;
  if (bValue === undefined || !Number.isFinite(bValue) || bValue <= 0) {
    return {
      applies: true,
      note: `Ischaemic core = ADC < ${threshold} x10-6 mm2/s; the b-value of this ADC is not known: the threshold is defined for ADC at b ~ 1000 s/mm2, check the protocol.`,
    };
  }
  if (bValue < lo || bValue > hi) {
    return {
      applies: false,
      note:
        `Ischaemic core volume (ADC < ${threshold} x10-6 mm2/s) NOT reported: that threshold is defined for ADC at b ~ 1000 s/mm2, ` +
        `and this study's ADC comes from b = ${bValue} s/mm2, where healthy tissue reads ${bValue > hi ? 'lower (the threshold would call it core)' : 'higher (the threshold would miss core)'}. No conversion is attempted.`,
    };
  }
  return { applies: true, note: `Ischaemic core = ADC < ${threshold} x10-6 mm2/s, from ADC at b = ${bValue} s/mm2 (threshold defined at b ~ 1000).` };
}
